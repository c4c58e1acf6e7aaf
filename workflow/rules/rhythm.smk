# Rhythm: beat, downbeat and onset grids (<name>.BEATS_GRID, .DOWNBEATS, .ONSETS: one %.6f time per line)
# and the rhythm keys of the full mix; per-stem rhythm against the full-mix beat grid.
# The grid files carry the track's name, so this rule spells the track id as {parent}{name}.


rule rhythm:
    input:
        unpack(mix_input),
    output:
        json=f"{RESULTS}/{{parent}}{{name}}/features/rhythm.json",
        beats=f"{RESULTS}/{{parent}}{{name}}/{{name}}.BEATS_GRID",
        downbeats=f"{RESULTS}/{{parent}}{{name}}/{{name}}.DOWNBEATS",
        onsets=f"{RESULTS}/{{parent}}{{name}}/{{name}}.ONSETS",
    params:
        family="rhythm",
        version=family_version("rhythm"),
        settings=family_settings("rhythm"),
        job=family_job("rhythm"),
    log:
        f"{RESULTS}/{{parent}}{{name}}/logs/rhythm.log",
    conda:
        "../../envs/mirflow.yaml"
    shell:
        JOB_SHELL


rule rhythm_stems:
    input:
        unpack(stems_and_beats),
    output:
        family_output("rhythm_stems"),
    params:
        family="rhythm_stems",
        version=family_version("rhythm_stems"),
        settings=family_settings("rhythm_stems"),
        job=family_job("rhythm_stems"),
    log:
        family_log("rhythm_stems"),
    conda:
        "../../envs/mirflow.yaml"
    shell:
        JOB_SHELL
