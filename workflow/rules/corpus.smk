# Corpus-level outputs: statistics and the HTML report over every .INFO (tracks and crops), the index that
# lets the Stable Audio Tools metadata module find each track's .INFO, and AudioCraft's manifest of the crops.
# They read the results folder; one list of the corpus's tracks, rewritten whenever a .INFO or crop folder is newer,
# orders and reruns all three (each declaring every track's files would cost the DAG 4 paths per track).


localrules:
    corpus_tracks,


rule corpus_tracks:
    input:
        unpack(lambda wildcards: {"infos": all_info_files(), "crops": all_crop_dirs()}),
    output:
        f"{RESULTS}/stats/corpus_tracks.tsv",
    log:
        f"{RESULTS}/logs/corpus_tracks.log",
    conda:
        "../../envs/mirflow.yaml"
    script:
        "../../scripts/rule_corpus_tracks.py"


rule corpus_report:
    input:
        rules.corpus_tracks.output,
    output:
        tracks_csv=f"{RESULTS}/stats/features_tracks.csv",
        tracks_json=f"{RESULTS}/stats/stats_tracks.json",
        tracks_html=report(f"{RESULTS}/stats/report_tracks.html", category="Corpus report"),
        crops_csv=f"{RESULTS}/stats/features_crops.csv",
        crops_json=f"{RESULTS}/stats/stats_crops.json",
        crops_html=report(f"{RESULTS}/stats/report_crops.html", category="Corpus report"),
    params:
        stats=config["stats"],
        report=config["report"],
    log:
        f"{RESULTS}/logs/corpus_report.log",
    conda:
        "../../envs/mirflow.yaml"
    script:
        "../../scripts/rule_corpus_report.py"


rule training_exports:
    input:
        rules.corpus_tracks.output,
    output:
        index=f"{RESULTS}/sat_index.json",
        config=f"{RESULTS}/sat_config.json",
    params:
        pairs=lambda wildcards: {t.audio: f"{RESULTS}/{t.id}/{t.name}.INFO" for t in TRACKS.values()},
        input_dir=config["input_dir"],
        prompt=config["exports"],
    log:
        f"{RESULTS}/logs/training_exports.log",
    conda:
        "../../envs/mirflow.yaml"
    script:
        "../../scripts/rule_training_exports.py"


rule audiocraft_manifest:
    input:
        rules.corpus_tracks.output,
    output:
        f"{RESULTS}/audiocraft/data.jsonl.gz",
    log:
        f"{RESULTS}/logs/audiocraft_manifest.log",
    conda:
        "../../envs/mirflow.yaml"
    script:
        "../../scripts/rule_audiocraft_manifest.py"
