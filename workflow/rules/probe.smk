# Tracks whose names the workflow cannot carry (mirflow.names) fail in their own job instead of stopping the
# whole run. (The decode check of every track's inputs is the first thing its track_features job does.)


rule unusable_track:
    output:
        f"{RESULTS}/logs/unusable/{{key}}.json",
    params:
        track=lambda wildcards: UNUSABLE[wildcards.key][0].id,
        audio=lambda wildcards: UNUSABLE[wildcards.key][0].audio,
        reason=lambda wildcards: UNUSABLE[wildcards.key][1],
    log:
        f"{RESULTS}/logs/unusable/{{key}}.log",
    conda:
        "../../envs/mirflow.yaml"
    script:
        "../../scripts/rule_unusable.py"
