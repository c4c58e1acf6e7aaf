# Model files: each is a file target under models_dir, fetched from its official source and verified by sha256.
# `snakemake fetch_models` fetches every model of the enabled families in advance.
# On a cluster these run in the head process (login node: network, one fetch each), never in a cluster job.


localrules:
    fetch_model_file,
    verify_model_file,
    fetch_models,


rule fetch_model_file:
    output:
        f"{MODELS_DIR}/{{model_file}}",
    params:
        spec=lambda wildcards: MODEL_FILES[wildcards.model_file][1],
    log:
        f"{MODELS_DIR}/.logs/fetch/{{model_file}}.log",
    wildcard_constraints:
        model_file=MODEL_FILE_PATTERN,
    conda:
        "../../envs/mirflow.yaml"
    script:
        "../../scripts/rule_fetch_model.py"


rule verify_model_file:
    input:
        f"{MODELS_DIR}/{{model_file}}",
    output:
        f"{MODELS_DIR}/.verified/{{model_file}}.sha256",
    params:
        spec=lambda wildcards: MODEL_FILES[wildcards.model_file][1],
    log:
        f"{MODELS_DIR}/.logs/verify/{{model_file}}.log",
    wildcard_constraints:
        model_file=MODEL_FILE_PATTERN,
    conda:
        "../../envs/mirflow.yaml"
    script:
        "../../scripts/rule_verify_model.py"


rule fetch_models:
    input:
        wanted_model_markers(),
