# The per-track jobs, one rule per step of the job layout (mirflow.layout, derived from the registry):
#   track_features  the probe (decode check of the inputs) and every CPU family of the full mix
#   stem_features   the CPU families of every stem (tracks with stems)
#   gpu_features    the GPU families of the full mix (one GPU slot)
#   <family>        a family planned on its own terms (Basic Pitch needs the bass stem; Music Flamingo)
#   track_info      feature captions and the merge into <name>.INFO
# Each family still writes its own partial JSON; a step rerun for one family keeps the others' results
# (update() outputs checked against their _meta, mirflow.runner.reusable). Version and settings of every
# family of a step are its params, so bumping either reruns that step, where only that family is computed.

for _step in LAYOUT:

    rule:
        name:
            _step.rule
        input:
            unpack(step_inputs(_step)),
        output:
            **step_outputs(_step),
        params:
            versions=step_versions(_step),
            settings={name: family_settings(name) for name in _step.families},
            # Plain values, not functions of the wildcards: Snakemake's params trigger sees only these.
            resolved=config["resolved"] if _step.merge else {},
            catalogue=CATALOGUE_SHA256 if _step.merge else "",
            job=step_params(_step),
        resources:
            **({"gpu": 1} if _step.lane == "gpu" else {}),
        group:
            cluster_group(cluster_layer(_step))
        log:
            f"{RESULTS}/{{parent}}{{name}}/logs/{_step.rule}.log",
        conda:
            "../../envs/mirflow.yaml"
        shell:
            JOB_SHELL
