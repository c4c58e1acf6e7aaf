"""Feature-grounded captions: facts from features, templates, verification, prompt placeholders, the
retry/fallback logic (with a scripted model) and the real SmolLM2-135M-Instruct GGUF model."""
from __future__ import annotations

import itertools

import pytest

from mirflow.captions.facts import (
    allowed_from_facts,
    allowed_from_text,
    build_facts,
    clean_label,
    key_mentions,
    parse_key,
    placeholders_in,
    render_prompt,
    template_caption,
    verify_caption,
)
from mirflow.captions.feature_captions import FeatureCaptionsParams, caption_from_features, load_caption_model
from mirflow.captions.llm import Generation
from mirflow.errors import ConfigError
from mirflow.params import from_config


def P(section: dict) -> FeatureCaptionsParams:
    """The typed parameters of a config section, as runner.compute_family builds them."""
    return from_config(FeatureCaptionsParams, section, where="captions_feature")


# A 128 BPM A-minor techno track as the other families report it.
TRACK = {
    "bpm": 127.98, "bpm_is_defined": 1, "key": "A minor", "tonic": 0, "tonic_scale": "major",
    "lufs": -7.5, "brightness": 66.0, "drum_density_total": 7.2, "production_quality": 8.1,
    "essentia_genre": {"Electronic---Techno": 0.62, "Electronic---House": 0.21, "Electronic---Deep House": 0.04,
                       "Rock---Pop Rock": 0.01},
    "essentia_mood": {"dark": 0.7, "energetic": 0.55, "happy": 0.1, "non_relaxed": 0.9},
    "essentia_instrument": {"synthesizer": 0.8, "drummachine": 0.6, "piano": 0.05},
    "musicnn_tags": {"electronic": 0.8, "beat": 0.5, "fast": 0.6, "techno": 0.7, "vocal": 0.05},
}


# ------------------------------------------------------------------ facts

def test_facts_round_and_threshold_the_features():
    facts = build_facts(TRACK)
    assert facts.bpm == 128 and facts.tempo_class == "fast"
    assert facts.key == "A minor"  # `key` wins over tonic/tonic_scale (which say C major here)
    assert facts.genres == ("techno", "house")  # deep house (0.04) and pop rock are below genre_min_p 0.1
    assert facts.genre_parents == ("electronic",)
    assert facts.moods == ("dark", "energetic")  # "non_relaxed" is never a mood, however likely
    assert facts.instruments == ("synthesizer", "drum machine")
    assert facts.tags == ("electronic", "beat")  # "fast" is a tempo word; "techno" is already a genre
    assert (facts.loudness, facts.brightness, facts.drums, facts.production) == (
        "loud", "bright", "busy drums", "polished production")
    assert facts.sources["tempo"] == "bpm, bpm_is_defined" and facts.sources["key"] == "key"


@pytest.mark.parametrize("features, bpm, steady", [
    ({"bpm": 99.5, "bpm_is_defined": 1}, 100, None),   # round half to even would give 100 too; 99.5 -> 100
    ({"bpm": 84.4, "bpm_is_defined": 1}, 84, None),
    ({"bpm": 128.0, "bpm_is_defined": 0}, None, False),  # not trustworthy: "no steady beat", no number
    ({"bpm": 128.0}, None, None),                       # unknown trustworthiness: not used at all
    ({"bpm_is_defined": 1}, None, None),
])
def test_tempo_fact_needs_bpm_is_defined(features, bpm, steady):
    facts = build_facts(features)
    assert (facts.bpm, facts.steady_beat) == (bpm, steady)


@pytest.mark.parametrize("bpm, expected", [(89.4, "slow"), (90, "moderate"), (119.4, "moderate"), (120, "fast")])
def test_tempo_class_thresholds(bpm, expected):
    assert build_facts({"bpm": bpm, "bpm_is_defined": 1}).tempo_class == expected


@pytest.mark.parametrize("key, value, expected", [
    ("lufs", -12.0, "loud"), ("lufs", -12.1, None), ("lufs", -20.0, None), ("lufs", -20.1, "quiet"),
    ("brightness", 60.0, "bright"), ("brightness", 39.9, "mellow"), ("brightness", 50.0, None),
    ("drum_density_total", 0.0, "no drums"), ("drum_density_total", 1.9, "sparse drums"),
    ("drum_density_total", 6.0, "busy drums"), ("drum_density_total", 4.0, None),
    ("production_quality", 7.5, "polished production"), ("production_quality", 4.9, "lo-fi production"),
])
def test_qualitative_thresholds_are_documented_boundaries(key, value, expected):
    facts = build_facts({key: value})
    got = {"lufs": facts.loudness, "brightness": facts.brightness, "drum_density_total": facts.drums,
           "production_quality": facts.production}[key]
    assert got == expected


def test_key_from_tonic_when_no_key_label():
    assert build_facts({"tonic": 10, "tonic_scale": "minor"}).key == "A# minor"
    assert build_facts({"tonic": 10}).key is None


@pytest.mark.parametrize("bad", [{"bpm": "fast"}, {"bpm": float("nan")}, {"essentia_genre": ["techno"]},
                                 {"essentia_mood": {"dark": "high"}}, {"key": "H minor"}, {"tonic": 12,
                                 "tonic_scale": "minor"}, {"bpm_is_defined": 2}])
def test_malformed_features_fail_loudly(bad):
    with pytest.raises(ValueError):
        build_facts(bad)


def test_clean_label():
    assert clean_label("Electronic---Drum n Bass") == "drum n bass"
    assert clean_label("mood_happy") == "happy"
    assert clean_label("acousticguitar") == "acoustic guitar"


# ------------------------------------------------------------------ templates

def test_template_captions_state_exactly_the_facts():
    facts = build_facts(TRACK)
    assert template_caption(facts, "sentence") == (
        "A dark, energetic techno and house track at 128 BPM in A minor, featuring synthesizer and drum machine, "
        "with a loud and bright mix, busy drums and polished production.")
    assert template_caption(facts, "detailed") == (
        "This is a techno and house track with a dark and energetic mood. It moves at 128 BPM, a fast tempo, "
        "in A minor. The instrumentation features synthesizer and drum machine. It is tagged electronic and beat. "
        "The mix is loud and bright. The drums are busy. The track has polished production.")
    assert template_caption(facts, "tags") == (
        "techno, house, dark, energetic, synthesizer, drum machine, electronic, beat, 128 bpm, fast tempo, "
        "a minor, loud, bright, busy drums, polished production")


def test_missing_features_are_not_mentioned():
    facts = build_facts({"key": "D major"})
    assert template_caption(facts, "sentence") == "A track in D major."
    assert template_caption(facts, "detailed") == "It is in D major."
    assert template_caption(build_facts({"bpm": 70.2, "bpm_is_defined": 0, "essentia_mood": {"calm": 0.9}}),
                            "sentence") == "A calm track, with no steady beat."


def test_every_template_passes_its_own_verification():
    pieces = [{"bpm": 127.98, "bpm_is_defined": 1}, {"bpm": 61.0, "bpm_is_defined": 0}, {"key": "Eb major"},
              {"essentia_genre": TRACK["essentia_genre"]}, {"essentia_mood": TRACK["essentia_mood"]},
              {"essentia_instrument": {"acousticguitar": 0.9, "voice": 0.7}},
              {"musicnn_tags": {"instrumental": 0.8, "80s": 0.6}}, {"lufs": -25.0, "brightness": 20.0},
              {"drum_density_total": 0.0, "production_quality": 3.0}]
    checked = 0
    for combo in itertools.combinations(pieces, 3):
        features = {k: v for piece in combo for k, v in piece.items()}
        facts = build_facts(features)
        if not facts.has_describable_content():
            continue
        for style, core in (("sentence", True), ("detailed", True), ("tags", False)):
            text = template_caption(facts, style)
            assert verify_caption(text, allowed_from_facts(facts, require_core=core)) == [], (features, style, text)
            checked += 1
    assert checked > 200


def test_nothing_to_describe():
    facts = build_facts({"lufs": -9.0, "brightness": 70.0})
    assert not facts.has_describable_content()
    with pytest.raises(ValueError, match="no tempo, key or tag"):
        template_caption(facts, "sentence")


# ------------------------------------------------------------------ verification

ALLOWED = allowed_from_facts(build_facts(TRACK))


@pytest.mark.parametrize("text", [
    "An energetic techno piece in A minor at 128 BPM, with synth and drums.",
    "A dark techno and house track in Am at 128 beats per minute, driven by a drum machine.",
    "Dark, bright, loud techno at 128 BPM in A minor with a polished, professional sound.",
])
def test_faithful_rephrasings_pass(text):
    assert verify_caption(text, ALLOWED) == []


@pytest.mark.parametrize("text, problem", [
    ("A dark techno track at 130 BPM in A minor.", "number 130"),
    ("A dark techno track at 127.98 BPM in A minor.", "number 127.98"),
    ("A dark techno track at 128 BPM in C major.", "key 'C major'"),
    ("A dark techno track at 128 BPM in A major.", "key mode 'major'"),
    ("A dark techno track at 128 BPM in A minor, released in 2022.", "number 2022"),
    ("A dark techno track at one hundred twenty-eight BPM in A minor.", "spells out a number"),
    ("A slow techno track at 128 BPM in A minor.", "tempo 'slow'"),
    ("A dark techno track at 128 BPM in A minor with female vocals.", "instrument 'vocal"),
    ("A dark techno track at 128 BPM in A minor with a piano melody.", "instrument 'piano'"),
    ("A dark deep house and techno track at 128 BPM in A minor.", "genre 'deep house'"),
    ("A happy techno track at 128 BPM in A minor.", "mood 'happy'"),
    ("A quiet techno track at 128 BPM in A minor.", "loudness 'quiet'"),
    ("A dark, lo-fi techno track at 128 BPM in A minor.", "production 'lo-fi'"),
    ("An instrumental techno track at 128 BPM in A minor.", "vocals 'instrumental'"),
    ("Here's a rephrased version: a techno track at 128 BPM in A minor.", "talks about the task"),
    ("A dark techno track in A minor.", "does not state the tempo"),
    ("A dark techno track at 128 BPM.", "does not state the key"),
    ("A dark track at 128 BPM in A minor.", "does not state the main genre"),
    ("", "empty"),
])
def test_contradictions_and_inventions_are_caught(text, problem):
    problems = verify_caption(text, ALLOWED)
    assert any(problem in p for p in problems), problems


def test_phrases_inside_an_allowed_phrase_are_fine():
    allowed = allowed_from_facts(build_facts({"essentia_genre": {"Electronic---Drum n Bass": 0.9}}))
    # "bass" (instrument) inside the genre "drum n bass" is not an instrument claim
    assert verify_caption("An intense drum n bass track.", allowed) == [("mentions mood 'intense', which the "
                                                                         "features do not give")]
    assert verify_caption("A drum and bass track.", allowed) == []


def test_key_parsing_is_enharmonic_and_accepts_short_forms():
    assert parse_key("A# minor") == parse_key("Bb minor") == parse_key("B-flat minor") == (10, "minor")
    assert parse_key("Am") == (9, "minor") and parse_key("F# major") == (6, "major")
    assert [k for _, k in key_mentions("from Em to G major, a minimal piece")] == [(4, "minor"), (7, "major")]


def test_word_and_sentence_limits():
    text = "A dark techno track at 128 BPM in A minor. It has synth."
    assert "more than 1 sentence(s)" in verify_caption(text, ALLOWED, max_sentences=1)
    assert "longer than 5 words" in verify_caption(text, ALLOWED, max_words=5)


def test_allowed_from_text_limits_a_rewrite_to_the_source():
    source = "An energetic techno track at 128 BPM in A minor with acid synth lines and a pounding kick."
    allowed = allowed_from_text(source)
    assert verify_caption("Energetic acid techno at 128 BPM in A minor.", allowed) == []
    problems = verify_caption("Energetic acid techno at 130 BPM in F minor with piano.", allowed)
    assert len(problems) == 3 and "number 130" in problems[0]


# ------------------------------------------------------------------ prompt placeholders

def test_render_prompt_fills_placeholders_from_features():
    text = render_prompt("Genres: {genres}. Tempo: {bpm}. Key: {key}. Loudness: {lufs}. {{literal}}", TRACK)
    assert text == ("Genres: techno (0.62), house (0.21). Tempo: 128 BPM. Key: A minor. Loudness: -7.5 LUFS. "
                    "{literal}")


def test_render_prompt_says_unknown_for_missing_features():
    assert render_prompt("Genres: {genres}. Tempo: {bpm}. Moods: {moods}.", {}) == (
        "Genres: unknown. Tempo: unknown. Moods: unknown.")
    assert render_prompt("Tempo: {bpm}.", {"bpm": 131.0, "bpm_is_defined": 0}) == "Tempo: no steady beat."


@pytest.mark.parametrize("template", ["{genre}", "{bpm:.1f}", "{key!r}", "{}", "{0}", "{unclosed"])
def test_render_prompt_fails_loudly_on_bad_placeholders(template):
    with pytest.raises(ConfigError):
        render_prompt(template, TRACK)


def test_placeholders_in():
    assert placeholders_in("no placeholders {{here}}") == []
    assert placeholders_in("{genres} and {bpm}") == ["genres", "bpm"]


# ------------------------------------------------------------------ retry / fallback logic (scripted model)

class ScriptedModel:
    """Answers chat calls with prepared texts, in order, and records what it was asked."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.calls = []

    def chat(self, messages, sampling):
        self.calls.append((messages, sampling))
        text = self.answers.pop(0)
        return Generation(text=text, prompt_tokens=100, generated_tokens=len(text.split()), stop="end of turn",
                          seconds=0.01)

    def describe(self):
        return {"model_file": "scripted"}


def test_a_hallucinated_answer_is_retried_with_the_next_seed():
    model = ScriptedModel(["<|im_start|>assistant\nA dark techno track at 130 BPM in A minor.<|im_end|>",
                           "A dark \u201ctechno\u201d track at 128 BPM in A minor"])
    result = caption_from_features(model, TRACK, P({"styles": ["sentence"]}))
    assert result.values == {"caption_feature_sentence": 'A dark "techno" track at 128 BPM in A minor.'}
    record = result.meta["captions"]["caption_feature_sentence"]
    assert record["path"] == "llm" and record["attempts"] == 2 and record["seed"] == FeatureCaptionsParams().seed + 1
    assert "number 130" in record["rejected"][0]["problems"][0]
    assert [s.seed for _, s in model.calls] == [42, 43]
    # the model is only asked to rewrite the factual draft, after one worked example
    messages = model.calls[0][0]
    assert messages[-1]["content"] == "Rewrite: " + template_caption(build_facts(TRACK), "sentence")
    assert "92 BPM" in messages[2]["content"] and "128" not in messages[2]["content"]


def test_when_every_try_fails_the_template_is_stored():
    model = ScriptedModel(["A techno track at 130 BPM in A minor."] * 3)
    result = caption_from_features(model, TRACK, P({"styles": ["sentence", "tags"]}))
    facts = build_facts(TRACK)
    assert result.values["caption_feature_sentence"] == template_caption(facts, "sentence")
    assert result.meta["captions"]["caption_feature_sentence"]["path"] == "template"
    assert result.meta["captions"]["caption_feature_sentence"]["attempts"] == 3
    # tags never ask the model
    assert len(model.calls) == 3 and result.meta["captions"]["caption_feature_tags"] == {"path": "template"}


def test_no_describable_features_means_absent_keys_with_a_reason():
    result = caption_from_features(ScriptedModel([]), {"lufs": -9.0, "brightness": 70.0})
    assert result.values == {}
    assert set(result.absent) == {"caption_feature_sentence", "caption_feature_detailed", "caption_feature_tags"}
    assert all("no tempo, key" in reason for reason in result.absent.values())


def test_without_a_model_the_templates_are_written():
    result = caption_from_features(None, TRACK)
    assert result.values["caption_feature_detailed"] == template_caption(build_facts(TRACK), "detailed")
    assert {r["path"] for r in result.meta["captions"].values()} == {"template (no model)"}


def test_flamingo_revision_is_checked_against_the_long_caption():
    features = {**TRACK, "music_flamingo_full": "An energetic techno track at 128 BPM in A minor. It builds slowly "
                                                "with acid synth lines.",
                "music_flamingo_structure": "A long intro leads into the first drop."}
    model = ScriptedModel(["Energetic techno at 130 BPM.", "A 128 BPM techno track with piano.",
                           "Energetic acid techno at 128 BPM in A minor.",
                           "Intro, then the drop.",
                           ])
    result = caption_from_features(model, features, P({"styles": [], "revise_flamingo": True, "attempts": 3}))
    assert result.values["music_flamingo_short_full"] == "Energetic acid techno at 128 BPM in A minor."
    assert result.meta["captions"]["music_flamingo_short_full"]["attempts"] == 3
    assert result.values["music_flamingo_short_structure"] == "Intro, then the drop."


def test_flamingo_revision_falls_back_to_the_first_sentence():
    features = {"music_flamingo_full": "Techno at 128 BPM. More text follows here."}
    result = caption_from_features(ScriptedModel(["Techno at 135 BPM."] * 2), features,
                                   P({"styles": [], "revise_flamingo": True, "attempts": 2}))
    assert result.values == {"music_flamingo_short_full": "Techno at 128 BPM."}
    assert result.meta["captions"]["music_flamingo_short_full"]["path"] == "first sentence"


# ------------------------------------------------------------------ the real model

@pytest.fixture(scope="module")
def smol(smollm2_path):
    # one thread: llama.cpp's worker threads spin at barriers, which collapses on a shared, oversubscribed CPU
    model = load_caption_model(str(smollm2_path), threads=1)
    yield model
    model.close()


REAL_PARAMS = P({"styles": ["sentence", "detailed"], "attempts": 2})


@pytest.fixture(scope="module")
def first_run(smol):
    return caption_from_features(smol, TRACK, REAL_PARAMS)


def test_real_model_captions_do_not_contradict_the_features(first_run):
    allowed = allowed_from_facts(build_facts(TRACK))
    for key in ("caption_feature_sentence", "caption_feature_detailed"):
        text = first_run.values[key]
        assert verify_caption(text, allowed) == [], (key, text)
        assert "128 BPM" in text and "127.98" not in text and "128.0" not in text
        assert [k for _, k in key_mentions(text)] == [(9, "minor")]
        assert first_run.meta["captions"][key]["path"] in ("llm", "template")
    assert first_run.meta["model"]["model_file"] == "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_real_model_reruns_are_identical(smol, first_run):
    again = caption_from_features(smol, TRACK, REAL_PARAMS)
    assert again.values == first_run.values
    def strip(meta):
        return {k: {f: v for f, v in r.items() if f != "seconds"} for k, r in meta["captions"].items()}
    assert strip(again.meta) == strip(first_run.meta)


# ------------------------------------------------------------------ note names and chords against the key

def test_key_scales_are_the_diatonic_pitch_classes():
    from mirflow.captions.facts import key_pitch_classes
    assert key_pitch_classes(parse_key("Eb major")) == {3, 5, 7, 8, 10, 0, 2}          # Eb F G Ab Bb C D
    # A minor: natural minor A B C D E F G plus the raised 6th and 7th (F#, G#) of melodic/harmonic minor
    assert key_pitch_classes(parse_key("A minor")) == {9, 11, 0, 2, 4, 5, 7, 6, 8}


def test_note_mentions_read_notes_and_chords_but_not_the_article_or_keys():
    from mirflow.captions.facts import note_mentions
    found = note_mentions("A bright mix of F# and A over Cmaj7, Bdim and E-flat, in A minor.")
    assert [(w, sorted(pcs)) for w, pcs in found] == [
        ("F#", [6]), ("A", [9]), ("Cmaj7", [0, 4, 7, 11]), ("Bdim", [2, 5, 11]), ("E-flat", [3])]
    assert note_mentions("A sharp synth lead and a minimal beat in Am.") == []


@pytest.mark.parametrize("text, problem", [
    ("A bright mix of F# and A.", "'F#', which is outside the track's key"),
    ("A warm Eb major groove over a D major chord progression with B and Db.", "'B', which is outside"),
    ("A warm groove in Eb major that lands on a Gm7 then Bbsus4 and a borrowed Cb chord.", "'Cb'"),
    ("A warm groove in Eb major that lands on E7.", "'E7'"),
])
def test_notes_and_chords_outside_the_key_are_rejected(text, problem):
    allowed = allowed_from_facts(build_facts({"key": "Eb major"}), require_core=False)
    problems = verify_caption(text, allowed)
    assert any(problem in p for p in problems), problems


def test_diatonic_notes_and_chords_pass_and_no_key_admits_no_note():
    eb = allowed_from_facts(build_facts({"key": "Eb major"}), require_core=False)
    assert verify_caption("A groove in Eb major moving from Cm7 to Ab and Bb7, with a G pedal.", eb) == []
    a_minor = allowed_from_facts(build_facts({"key": "A minor"}), require_core=False)
    assert verify_caption("A pulse in A minor resolving from E to Am.", a_minor) == []  # V of minor is major
    assert "'F#', but no key is known" in verify_caption("A bright mix of F# and A.", allowed_from_facts(
        build_facts({"essentia_genre": {"Electronic---Techno": 0.9}}), require_core=False))[0]


def test_a_rewrite_may_name_only_the_notes_of_its_source_key_or_notes():
    allowed = allowed_from_text("A calm piece in Eb major with a pedal note on G.")
    assert verify_caption("A calm Eb major piece over a G pedal.", allowed) == []
    assert any("'F#'" in p for p in verify_caption("A calm Eb major piece over an F# pedal.", allowed))


def test_caption_prompts_use_the_export_template_language():
    # Optional parts as in the SAT/AudioCraft templates: left out when their placeholder has no value.
    assert render_prompt("Tempo: {bpm}.[ Key: {key}.][ Moods: {moods}.] [[x]]", {"bpm": 120.0, "bpm_is_defined": 1}) \
        == "Tempo: 120 BPM. [x]"
    assert render_prompt("[Key: {key}. ]Genres: {genres}.", {"key": "A minor"}) == "Key: A minor. Genres: unknown."
    with pytest.raises(ConfigError, match="nested"):
        render_prompt("[a [{key}]]", TRACK)
