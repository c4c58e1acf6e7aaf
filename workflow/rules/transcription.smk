# Transcription to MIDI: ADTOF drums (GPU when available) and Basic Pitch bass.


rule drums:
    input:
        unpack(drums_inputs),
    output:
        json=family_output("drums"),
        midi=f"{RESULTS}/{{track}}/drums_adtof.mid",
    params:
        family="drums",
        version=family_version("drums"),
        settings=family_settings("drums"),
        job=family_job("drums", lane="gpu"),
    resources:
        gpu=1,
    log:
        family_log("drums"),
    conda:
        "../../envs/mirflow.yaml"
    shell:
        JOB_SHELL


rule bass_transcription:
    input:
        unpack(bass_inputs),
    output:
        json=family_output("bass_transcription"),
        midi=f"{RESULTS}/{{track}}/bass_basicpitch.mid",
    params:
        family="bass_transcription",
        version=family_version("bass_transcription"),
        settings=family_settings("bass_transcription"),
        job=family_job("bass_transcription"),
    log:
        family_log("bass_transcription"),
    conda:
        "../../envs/mirflow.yaml"
    shell:
        JOB_SHELL
