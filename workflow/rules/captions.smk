# Captions: written from the computed features by a small text LLM (offline default), and Music Flamingo
# listening to the audio through llama.cpp (one GPU slot). Both read the track's other partial JSONs.


rule captions_feature:
    input:
        unpack(lambda wildcards: caption_inputs(wildcards, "captions_feature")),
    output:
        family_output("captions_feature"),
    params:
        family="captions_feature",
        version=family_version("captions_feature"),
        settings=family_settings("captions_feature"),
        job=family_job("captions_feature"),
    log:
        family_log("captions_feature"),
    conda:
        "../../envs/mirflow.yaml"
    shell:
        JOB_SHELL


rule captions_flamingo:
    input:
        unpack(lambda wildcards: caption_inputs(wildcards, "captions_flamingo")),
    output:
        family_output("captions_flamingo"),
    params:
        family="captions_flamingo",
        version=family_version("captions_flamingo"),
        settings=family_settings("captions_flamingo"),
        job=family_job("captions_flamingo", lane="gpu"),
    resources:
        gpu=1,
    log:
        family_log("captions_flamingo"),
    conda:
        "../../envs/mirflow.yaml"
    shell:
        JOB_SHELL
