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
    resources:
        gpu=1,
    log:
        family_log("classifiers"),
    conda:
        "../../envs/mirflow.yaml"
    script:
        "../../scripts/rule_family.py"


rule aesthetics:
    input:
        unpack(lambda wildcards: mix_and_models(wildcards, "aesthetics")),
    output:
        family_output("aesthetics"),
    params:
        family="aesthetics",
        version=family_version("aesthetics"),
        settings=family_settings("aesthetics"),
    resources:
        gpu=1,
    log:
        family_log("aesthetics"),
    conda:
        "../../envs/mirflow.yaml"
    script:
        "../../scripts/rule_family.py"
