# Model-based families (one GPU slot per job): Essentia classifiers with embeddings, Audiobox Aesthetics.


rule classifiers:
    input:
        unpack(lambda wildcards: mix_and_models(wildcards, "classifiers")),
    output:
        json=family_output("classifiers"),
        embeddings=directory(f"{RESULTS}/{{track}}/embeddings"),
    params:
        family="classifiers",
        version=family_version("classifiers"),
        settings=family_settings("classifiers"),
        job=family_job("classifiers", lane="gpu"),
    resources:
        gpu=1,
    log:
        family_log("classifiers"),
    conda:
        "../../envs/mirflow.yaml"
    shell:
        JOB_SHELL


rule aesthetics:
    input:
        unpack(lambda wildcards: mix_and_models(wildcards, "aesthetics")),
    output:
        family_output("aesthetics"),
    params:
        family="aesthetics",
        version=family_version("aesthetics"),
        settings=family_settings("aesthetics"),
        job=family_job("aesthetics", lane="gpu"),
    resources:
        gpu=1,
    log:
        family_log("aesthetics"),
    conda:
        "../../envs/mirflow.yaml"
    shell:
        JOB_SHELL
