//! The LLaMA tokenizer (tests/data/llama-tokenizer, see tests/data/llama-tokenizer/PROVENANCE.md) against llama.cpp's 47
//! reference encodings, and the paper's prompt.

use std::path::PathBuf;

use llava_lens_model::LlavaTokenizer;

fn data(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/llama-tokenizer").join(file)
}

fn tokenizer() -> LlavaTokenizer {
    LlavaTokenizer::load(&data("tokenizer.json"), Some(32000)).unwrap()
}

#[test]
fn the_47_reference_cases_encode_exactly() {
    let tok = tokenizer();
    let inputs = std::fs::read_to_string(data("ggml-vocab-llama-spm.gguf.inp")).unwrap();
    let outputs = std::fs::read_to_string(data("ggml-vocab-llama-spm.gguf.out")).unwrap();
    // llama.cpp's format: texts separated by a marker line, one line of ids per text.
    let inputs: Vec<&str> = inputs.split("\n__ggml_vocab_test__\n").collect();
    let outputs: Vec<&str> = outputs.split('\n').collect();
    assert_eq!(inputs.len(), 47);
    assert_eq!(outputs.len(), 47);
    for (text, want) in inputs.iter().zip(&outputs) {
        let want: Vec<u32> = want.split_whitespace().map(|t| t.parse().unwrap()).collect();
        let got = tok.encode(text).unwrap();
        assert_eq!(got.first(), Some(&1), "{text:?} starts with <s>");
        assert_eq!(&got[1..], want.as_slice(), "{text:?}");
    }
}

#[test]
fn the_paper_prompt_has_its_ids_and_image_offset_5() {
    let tok = tokenizer();
    assert_eq!((tok.image_token, tok.token_id("<pad>"), tok.bos, tok.eos), (Some(32000), Some(32001), Some(1), Some(2)));
    let p = tok.prompt("What is the color of the dog?", "The color of the dog is").unwrap();
    assert_eq!(
        p.ids,
        [
            1, 3148, 1001, 29901, 29871, 32000, 29871, 13, 5618, 338, 278, 2927, 310, 278, 11203, 29973, 13, 22933, 9047, 13566, 29901,
            450, 2927, 310, 278, 11203, 338
        ]
    );
    assert_eq!(p.image_offset, Some(5));
    assert_eq!(tok.token(17354).as_deref(), Some("▁brown"));
    assert_eq!(tok.decode(&[450, 2927, 338, 17354]).unwrap(), "The color is brown");
}

#[test]
fn bad_prompts_and_mismatched_image_ids_are_clear_errors() {
    let tok = tokenizer();
    assert!(tok.prompt("   ", "").unwrap_err().to_string().contains("question is empty"));
    assert!(tok.prompt("a <image> b", "").unwrap_err().to_string().contains("may not contain <image>"));
    let err = LlavaTokenizer::load(&data("tokenizer.json"), Some(32005)).unwrap_err().to_string();
    assert!(err.contains("tokenizer.json") && err.contains("<image> has id 32000 but config.json's image_token_index is 32005"), "{err}");
    let err = LlavaTokenizer::from_bytes(b"{\"model\": 3}", std::path::Path::new("x/tokenizer.json"), Some(0)).unwrap_err().to_string();
    assert!(err.starts_with("x/tokenizer.json: not a tokenizers JSON file"), "{err}");
}

#[test]
fn a_tokenizer_cut_anywhere_in_its_decoder_is_an_error_naming_the_file_not_a_panic() {
    // tokenizers 0.23 panics on these bytes ("Helper": its decoder deserializer unwraps the JSON
    // error); the loader must refuse them before the crate sees them.
    let text = std::fs::read(data("tokenizer.json")).unwrap();
    let at = text.windows(9).position(|w| w == b"\"decoder\"").unwrap();
    let end = at + text[at..].windows(7).position(|w| w == b"\"model\"").unwrap();
    let path = std::path::Path::new("cut/tokenizer.json");
    for cut in at..end {
        let err = LlavaTokenizer::from_bytes(&text[..cut], path, Some(32000)).unwrap_err().to_string();
        assert!(err.starts_with("cut/tokenizer.json: not valid JSON"), "cut at {cut}: {err}");
    }
    // Valid JSON with a decoder of no known kind is refused by the crate itself, with an error.
    let odd = String::from_utf8(text.clone()).unwrap().replacen("\"decoder\": {", "\"decoder\": {\"type\": 7, \"x\": [", 1);
    let odd = odd.replacen("\"model\": {", "], \"model\": {", 1);
    let err = LlavaTokenizer::from_bytes(odd.as_bytes(), path, Some(32000)).unwrap_err().to_string();
    assert!(err.starts_with("cut/tokenizer.json: "), "{err}");
}

#[test]
fn words_without_a_whole_piece_are_named_with_their_pieces() {
    // The demo model's small vocabulary knows its scenes' words, not "ball".
    let demo =
        LlavaTokenizer::load(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/scenes-tiny/tokenizer.json"), None).unwrap();
    let split = demo.split_words("What is the color of the ball? The ball, the circle?");
    assert_eq!(split.len(), 1, "one unknown word, named once: {split:?}");
    assert_eq!(split[0].0, "ball");
    assert!(split[0].1.len() > 1 && split[0].1.concat().replace('▁', "") == "ball", "{split:?}");
    assert!(demo.split_words("What is the color of the circle?").is_empty());
    // LLaMA's vocabulary has "brown" whole.
    assert!(tokenizer().split_words("Is the dog brown?").is_empty());
}

#[test]
fn tokens_resolve_by_id_word_piece_or_single_token_text() {
    let tok = tokenizer();
    assert_eq!(tok.resolve_token("17354").unwrap(), 17354, "an id");
    assert_eq!(tok.resolve_token("brown").unwrap(), 17354, "a word: its word-initial piece ▁brown");
    assert_eq!(tok.resolve_token(" brown ").unwrap(), 17354, "surrounding space is ignored");
    assert_eq!(tok.resolve_token("▁brown").unwrap(), 17354, "the piece itself");
    assert_eq!(tok.resolve_token("<0x0A>").unwrap(), 13, "a byte piece by name");
    let err = tok.resolve_token("brown dog").unwrap_err().to_string();
    assert!(err.contains("is 2 tokens"), "{err}");
}

#[test]
fn a_tokenizer_with_broken_strings_in_its_decoder_is_an_error_not_a_panic() {
    // Found by fuzzing (docs/HARDENING.md): bytes that are not UTF-8 inside a string of the
    // decoder, and the same for a lone surrogate escape, made tokenizers panic.
    let text = std::fs::read(data("tokenizer.json")).unwrap();
    let at = text.windows(9).position(|w| w == b"\"decoder\"").unwrap();
    let quote = at + text[at..].windows(9).position(|w| w == b"\"content\"").unwrap() + 11;
    let path = std::path::Path::new("odd/tokenizer.json");
    for bad in [&b"\x96\x81"[..], b"\\udc00", b"\\ud800x"] {
        let mut t = text[..quote + 1].to_vec();
        t.extend_from_slice(bad);
        t.extend_from_slice(&text[quote + 1..]);
        let err = LlavaTokenizer::from_bytes(&t, path, Some(32000)).unwrap_err().to_string();
        assert!(err.starts_with("odd/tokenizer.json: not valid JSON"), "{bad:?}: {err}");
    }
}

#[test]
fn a_template_naming_an_undefined_special_token_is_an_error_not_a_panic() {
    // Found by fuzzing (docs/HARDENING.md): a TemplateProcessing post-processor whose template
    // names a special token its special_tokens lack parses, then panics at the first encode.
    let text = std::fs::read_to_string(data("tokenizer.json")).unwrap();
    let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    doc["post_processor"] = serde_json::json!({
        "type": "Sequence",
        "processors": [{
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s1>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}
        }]
    });
    let path = std::path::Path::new("odd/tokenizer.json");
    let err = LlavaTokenizer::from_bytes(doc.to_string().as_bytes(), path, Some(32000)).unwrap_err().to_string();
    assert!(err.contains("odd/tokenizer.json: post_processor: the single template uses the special token \"<s1>\""), "{err}");
}
