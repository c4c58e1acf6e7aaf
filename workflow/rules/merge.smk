# Assemble every family's partial JSON of a track into <name>.INFO, validated against the catalogue.


rule merge_info:
    input:
        unpack(merge_inputs),
        catalogue=CATALOGUE,
    output:
        f"{RESULTS}/{{track}}/{{name}}.INFO",
    params:
        version=STEP_VERSIONS["merge_info"],
        missing=missing_families,
        resolved=config["resolved"],
        job=job_spec("mirflow.merge:run_merge_job", "merge_info", missing=missing_families,
                     resolved=config["resolved"]),
    log:
        f"{RESULTS}/{{track}}/logs/merge_{{name}}.log",
    conda:
        "../../envs/mirflow.yaml"
    shell:
        JOB_SHELL
