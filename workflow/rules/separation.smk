# Stem separation (Demucs) for tracks without provided stems. One GPU slot per job.


rule separate_stems:
    input:
        unpack(separation_inputs),
    output:
        drums=f"{RESULTS}/{{track}}/stems/drums.{STEM_EXT}",
        bass=f"{RESULTS}/{{track}}/stems/bass.{STEM_EXT}",
        other=f"{RESULTS}/{{track}}/stems/other.{STEM_EXT}",
        vocals=f"{RESULTS}/{{track}}/stems/vocals.{STEM_EXT}",
        meta=f"{RESULTS}/{{track}}/stems/separation.json",
    params:
        version=STEP_VERSIONS["separate_stems"],
        settings=SEPARATION,
        job=job_spec("mirflow.jobs:separate_job", "separate_stems", lane="gpu", shared={"settings": SEPARATION}),
    resources:
        gpu=1,
    group:
        cluster_group(SEPARATION_LAYER)
    log:
        f"{RESULTS}/{{track}}/logs/separate_stems.log",
    conda:
        "../../envs/mirflow.yaml"
    shell:
        JOB_SHELL
