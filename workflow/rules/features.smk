# Signal families: each reads audio through the shared loader and writes one partial JSON per track.
# A family's version and its config section are params, so bumping either reruns exactly that family.


rule loudness:
    input:
        unpack(mix_input),
    output:
        family_output("loudness"),
    params:
        family="loudness",
        version=family_version("loudness"),
        settings=family_settings("loudness"),
        job=family_job("loudness"),
    log:
        family_log("loudness"),
    conda:
        "../../envs/mirflow.yaml"
    shell:
        JOB_SHELL


rule loudness_stems:
    input:
        unpack(stem_inputs),
    output:
        family_output("loudness_stems"),
    params:
        family="loudness_stems",
        version=family_version("loudness_stems"),
        settings=family_settings("loudness_stems"),
        job=family_job("loudness_stems"),
    log:
        family_log("loudness_stems"),
    conda:
        "../../envs/mirflow.yaml"
    shell:
        JOB_SHELL


rule spectral:
    input:
        unpack(mix_input),
    output:
        family_output("spectral"),
    params:
        family="spectral",
        version=family_version("spectral"),
        settings=family_settings("spectral"),
        job=family_job("spectral"),
    log:
        family_log("spectral"),
    conda:
        "../../envs/mirflow.yaml"
    shell:
        JOB_SHELL


rule spectral_stems:
    input:
        unpack(stem_inputs),
    output:
        family_output("spectral_stems"),
    params:
        family="spectral_stems",
        version=family_version("spectral_stems"),
        settings=family_settings("spectral_stems"),
        job=family_job("spectral_stems"),
    log:
        family_log("spectral_stems"),
    conda:
        "../../envs/mirflow.yaml"
    shell:
        JOB_SHELL


rule multiband_rms:
    input:
        unpack(mix_input),
    output:
        family_output("multiband_rms"),
    params:
        family="multiband_rms",
        version=family_version("multiband_rms"),
        settings=family_settings("multiband_rms"),
        job=family_job("multiband_rms"),
    log:
        family_log("multiband_rms"),
    conda:
        "../../envs/mirflow.yaml"
    shell:
        JOB_SHELL


rule multiband_rms_stems:
    input:
        unpack(stem_inputs),
    output:
        family_output("multiband_rms_stems"),
    params:
        family="multiband_rms_stems",
        version=family_version("multiband_rms_stems"),
        settings=family_settings("multiband_rms_stems"),
        job=family_job("multiband_rms_stems"),
    log:
        family_log("multiband_rms_stems"),
    conda:
        "../../envs/mirflow.yaml"
    shell:
        JOB_SHELL


rule harmony:
    input:
        unpack(mix_and_stems),
    output:
        family_output("harmony"),
    params:
        family="harmony",
        version=family_version("harmony"),
        settings=family_settings("harmony"),
        job=family_job("harmony"),
    log:
        family_log("harmony"),
    conda:
        "../../envs/mirflow.yaml"
    shell:
        JOB_SHELL


rule harmony_stems:
    input:
        unpack(stem_inputs),
    output:
        family_output("harmony_stems"),
    params:
        family="harmony_stems",
        version=family_version("harmony_stems"),
        settings=family_settings("harmony_stems"),
        job=family_job("harmony_stems"),
    log:
        family_log("harmony_stems"),
    conda:
        "../../envs/mirflow.yaml"
    shell:
        JOB_SHELL


rule timbral:
    input:
        unpack(mix_input),
    output:
        family_output("timbral"),
    params:
        family="timbral",
        version=family_version("timbral"),
        settings=family_settings("timbral"),
        job=family_job("timbral"),
    log:
        family_log("timbral"),
    conda:
        "../../envs/mirflow.yaml"
    shell:
        JOB_SHELL


rule descriptors:
    input:
        unpack(mix_input),
    output:
        family_output("descriptors"),
    params:
        family="descriptors",
        version=family_version("descriptors"),
        settings=family_settings("descriptors"),
        job=family_job("descriptors"),
    log:
        family_log("descriptors"),
    conda:
        "../../envs/mirflow.yaml"
    shell:
        JOB_SHELL


rule metadata:
    input:
        unpack(mix_input),
    output:
        family_output("metadata"),
    params:
        family="metadata",
        version=family_version("metadata"),
        settings=family_settings("metadata"),
        job=family_job("metadata"),
    log:
        family_log("metadata"),
    conda:
        "../../envs/mirflow.yaml"
    shell:
        JOB_SHELL
