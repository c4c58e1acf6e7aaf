# Training crops: one job per track writes every crop of it (audio, stem crops, <name>_<N>.INFO) into
# results/<track id>/crops/. One job per track, not per crop, keeps the DAG small at corpus scale.


rule crops:
    input:
        unpack(crop_inputs),
    output:
        directory(f"{RESULTS}/{{parent}}{{name}}/crops"),
    params:
        version=STEP_VERSIONS["crops"],
        settings=config["crops"],
        families=crop_family_settings(),
        exports=config["exports"],
        resolved=config["resolved"],
        job=job_spec("mirflow.crop_job:crops_job", "crops", shared=dict(
            settings=config["crops"], families=crop_family_settings(), exports=config["exports"],
            resolved=config["resolved"]), carried=crop_carried),
    group:
        cluster_group(FINISH_LAYER)
    log:
        f"{RESULTS}/{{parent}}{{name}}/logs/crops.log",
    conda:
        "../../envs/mirflow.yaml"
    shell:
        JOB_SHELL
