# One cheap job per track decodes its input files before any family reads them (mirflow.probe): a broken
# file fails here, once, and the track's families never start. Tracks whose names the workflow cannot carry
# (mirflow.names) fail in their own job instead of stopping the whole run.


rule probe_audio:
    input:
        unpack(probe_inputs),
    output:
        f"{RESULTS}/{{track}}/logs/probe.json",
    params:
        version=STEP_VERSIONS["probe_audio"],
    log:
        f"{RESULTS}/{{track}}/logs/probe_audio.log",
    conda:
        "../../envs/mirflow.yaml"
    script:
        "../../scripts/rule_probe.py"


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
