//! `batch --analyses`: the paper's per-example readings beyond the scores (docs/BATCH.md,
//! "Analyses"), for examples that say which word is the colour and which the object.
//!
//! - Information storage: at the best heads' top positions, the rank of the correct colour and
//!   of a random other colour in each value-output vector, and of the correct and a random other
//!   object word in each layer input (the engine's storage step).
//! - Attention on the same vs a different object: the question asked again with the object word
//!   replaced by another object of the file, and the best head's attention on the same top
//!   positions in both.
//!
//! The "random" words are drawn from the words the whole file uses (not the shard's), by a hash
//! of the example's id: every shard and every rerun draws the same ones.

use std::collections::BTreeSet;

use llava_lens_explain::explanation::Explanation;
use llava_lens_explain::{StorageProbe, last_query_attention};
use llava_lens_model::{LlavaTokenizer, Prompt};
use serde::Serialize;

use super::examples::{Example, Row, fnv1a};
use crate::input::LoadedModel;

/// `--analyses` settings.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub heads: usize,
    pub positions: usize,
}

/// Every colour and object word of the file, lower-cased and sorted.
#[derive(Debug, Clone, Default)]
pub struct Words {
    colors: Vec<String>,
    objects: Vec<String>,
}

impl Words {
    pub fn of(rows: &[Row]) -> Words {
        let (mut colors, mut objects) = (BTreeSet::new(), BTreeSet::new());
        for e in rows.iter().filter_map(|r| r.example.as_ref().ok()) {
            colors.extend(e.color.as_deref().map(normal).filter(|w| !w.is_empty()));
            objects.extend(e.object.as_deref().map(normal).filter(|w| !w.is_empty()));
        }
        Words { colors: colors.into_iter().collect(), objects: objects.into_iter().collect() }
    }
}

fn normal(w: &str) -> String {
    w.trim().to_lowercase()
}

/// A word of `pool` other than `word`, chosen by `id` and `kind` (None when there is none).
fn other<'a>(pool: &'a [String], word: &str, id: &str, kind: &str) -> Option<&'a str> {
    let others: Vec<&String> = pool.iter().filter(|w| **w != normal(word)).collect();
    let key = format!("{id}\u{0}{kind}");
    (!others.is_empty()).then(|| others[(fnv1a(key.as_bytes()) % others.len() as u64) as usize].as_str())
}

/// The words of one example's analyses.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Chosen {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub random_color: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub random_object: Option<String>,
}

/// What an example's analyses ask of the engine: the storage probe (None when the example names
/// neither a colour nor an object) and the words, or why there are none.
pub fn plan(e: &Example, id: &str, words: &Words, tok: &LlavaTokenizer, s: Settings) -> Result<(StorageProbe, Chosen), String> {
    let pick = |word: &Option<String>, pool: &[String], kind: &str| -> Result<Option<(String, String)>, String> {
        let Some(w) = word.as_deref().filter(|w| !w.trim().is_empty()) else { return Ok(None) };
        let alt = other(pool, w, id, kind).ok_or_else(|| format!("the file has no {kind} other than {w:?} to draw a random one from"))?;
        Ok(Some((normal(w), alt.to_string())))
    };
    let color = pick(&e.color, &words.colors, "color")?;
    let object = pick(&e.object, &words.objects, "object")?;
    if color.is_none() && object.is_none() {
        return Err("the example names no color and no object".into());
    }
    let tokens = |pair: &Option<(String, String)>| -> Result<Vec<u32>, String> {
        pair.iter().flat_map(|(a, b)| [a, b]).map(|w| word_token(tok, w)).collect()
    };
    let probe = StorageProbe { heads: s.heads, positions: s.positions, value_tokens: tokens(&color)?, input_tokens: tokens(&object)? };
    let split = |p: Option<(String, String)>| p.map_or((None, None), |(a, b)| (Some(a), Some(b)));
    let ((color, random_color), (object, random_object)) = (split(color), split(object));
    Ok((probe, Chosen { color, random_color, object, random_object }))
}

/// The token a word starts with where it follows a space (a word of one token: that token).
fn word_token(tok: &LlavaTokenizer, word: &str) -> Result<u32, String> {
    if let Ok(id) = tok.resolve_token(word) {
        return Ok(id);
    }
    let ids = tok.encode(&format!(" {word}")).map_err(|e| e.to_string())?;
    ids.into_iter()
        .find(|&i| tok.token(i).is_some_and(|p| !p.trim_start_matches(['▁', 'Ġ', ' ']).is_empty()))
        .ok_or_else(|| format!("{word:?} has no token in the vocabulary"))
}

/// The attention the best head's top positions draw when the question names the example's
/// object (`same`) and when it names another (`different`), summed over the positions both
/// prompts share (those before the first token that differs).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttentionShift {
    pub layer: usize,
    pub head: usize,
    pub question: String,
    pub answer_prefix: String,
    /// Leading sequence positions the two prompts share (the image and the text before the
    /// object word).
    pub shared_positions: usize,
    pub positions: Vec<usize>,
    pub same: f32,
    pub different: f32,
}

/// The example's question and answer prefix with every whole-word occurrence of `object`
/// replaced by `by` (case kept for a capitalised first letter); None if neither names it.
pub fn swap_object(e: &Example, object: &str, by: &str) -> Option<(String, String)> {
    let (q, p) = (replace_word(&e.question, object, by), replace_word(&e.answer_prefix, object, by));
    (q != e.question || p != e.answer_prefix).then_some((q, p))
}

fn replace_word(text: &str, word: &str, by: &str) -> String {
    let (lower, word) = (text.to_lowercase(), normal(word));
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    let boundary = |s: &str, i: usize, before: bool| {
        let c = if before { s[..i].chars().next_back() } else { s[i..].chars().next() };
        c.is_none_or(|c| !c.is_alphanumeric())
    };
    // Lower-casing may change byte lengths outside ASCII; then the text is left alone.
    if lower.len() != text.len() || word.is_empty() {
        return text.to_string();
    }
    while let Some(found) = lower[at..].find(&word) {
        let (start, end) = (at + found, at + found + word.len());
        out.push_str(&text[at..start]);
        if boundary(&lower, start, true) && boundary(&lower, end, false) {
            let capital = text[start..].starts_with(|c: char| c.is_uppercase());
            let mut chars = by.chars();
            match (capital, chars.next()) {
                (true, Some(first)) => {
                    out.extend(first.to_uppercase());
                    out.push_str(chars.as_str());
                }
                _ => out.push_str(by),
            }
        } else {
            out.push_str(&text[start..end]);
        }
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

/// The attention shift for an explained example: the best storage head's top positions, its
/// attention in the explanation, and one more prefill of the edited question.
pub fn attention_shift(
    m: &LoadedModel,
    e: &Example,
    chosen: &Chosen,
    explained: &Explanation,
    prompt: &Prompt,
    pixels: &[f32],
    edited: impl Fn(&str, &str) -> anyhow::Result<Prompt>,
) -> anyhow::Result<AttentionShift> {
    let (Some(object), Some(by)) = (&chosen.object, &chosen.random_object) else {
        anyhow::bail!("the example names no object to swap");
    };
    let (question, answer_prefix) =
        swap_object(e, object, by).ok_or_else(|| anyhow::anyhow!("neither the question nor the answer prefix names {object:?}"))?;
    let swapped = edited(&question, &answer_prefix)?;
    let best = explained.storage.as_ref().and_then(|s| s.heads.first()).ok_or_else(|| anyhow::anyhow!("no storage reading"))?;
    let (layer, head) = (best.head.layer, best.head.head);
    let other = pollster::block_on(last_query_attention(&m.model, &m.ctx, &swapped, pixels, layer, head))?;
    // Positions before the first differing token mean the same thing in both prompts; past the
    // image token, a prompt id stands for image_tokens sequence positions.
    let same_ids = prompt.ids.iter().zip(&swapped.ids).take_while(|(a, b)| a == b).count();
    let shared = match prompt.image_offset {
        Some(off) if off < same_ids => same_ids + explained.image_tokens - 1,
        _ => same_ids,
    };
    let positions: Vec<usize> = best.positions.iter().copied().filter(|&p| p < shared).collect();
    let sum = |a: &[f32]| positions.iter().map(|&p| a[p]).sum::<f32>();
    Ok(AttentionShift {
        layer,
        head,
        question,
        answer_prefix,
        same: sum(&explained.position_attention),
        different: sum(&other),
        shared_positions: shared,
        positions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(question: &str, prefix: &str) -> Example {
        Example {
            image: Some("a.png".into()),
            context: None,
            question: question.into(),
            answer_prefix: prefix.into(),
            answer: None,
            target: None,
            contrast: None,
            tags: vec![],
            bbox: None,
            mask: None,
            mask_value: None,
            color: Some("Red".into()),
            object: Some("circle".into()),
        }
    }

    #[test]
    fn the_object_is_swapped_as_a_whole_word_in_question_and_prefix() {
        let e = example("What is the color of the circle? Circles aside.", "Circle: the color of the circle is");
        let (q, p) = swap_object(&e, "Circle", "square").unwrap();
        assert_eq!(q, "What is the color of the square? Circles aside.");
        assert_eq!(p, "Square: the color of the square is");
        assert_eq!(swap_object(&e, "triangle", "square"), None);
        // Words outside ASCII, and an empty replacement, are no trouble.
        let (q, _) = swap_object(&e, "circle", "étoile").unwrap();
        assert_eq!(q, "What is the color of the étoile? Circles aside.");
        assert_eq!(swap_object(&e, "circle", "").unwrap().1, ": the color of the  is");
    }

    #[test]
    fn random_words_are_other_words_fixed_by_the_id() {
        let pool: Vec<String> = ["blue", "green", "red"].map(String::from).to_vec();
        for id in ["a", "b", "000001-q0", "x y"] {
            let w = other(&pool, "Red", id, "color").unwrap();
            assert_ne!(w, "red");
            assert_eq!(Some(w), other(&pool, "red", id, "color"), "the same id draws the same word");
        }
        // Different ids spread over the other words.
        let drawn: BTreeSet<&str> = (0..50).map(|i| other(&pool, "red", &format!("ex-{i}"), "color").unwrap()).collect();
        assert_eq!(drawn.len(), 2);
        assert_eq!(other(&["red".to_string()], "red", "a", "color"), None);
    }
}
