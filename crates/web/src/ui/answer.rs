//! The answer: what the model says, which word is explained, its top 5 next words (each can be
//! explained instead, or contrasted with), a warning when the question has words the model's
//! vocabulary never saw whole, and how long it took. Screen readers hear the answer when it
//! arrives.

use leptos::prelude::*;

use super::mapview::WORD_START;
use super::state::State;

fn word(piece: &str) -> String {
    piece.trim_start_matches(WORD_START).to_string()
}

#[component]
pub fn AnswerCard(s: State) -> impl IntoView {
    let r = move || s.out.recorded.get();
    let explain_instead = move |w: String, rather: bool| {
        if rather {
            s.input.contrast.set(w);
        } else {
            s.input.target.set(w);
        }
        super::explain_fresh(&s);
    };
    let top = move || {
        r().map(|r| {
            r.top
                .iter()
                .map(|(t, p)| {
                    let w = word(t);
                    let (a, b) = (w.clone(), w.clone());
                    view! {
                        <li>
                            <span class="word">{w.clone()}</span>
                            <meter min="0" max="1" value=p.to_string() aria-label=format!("probability of {w}")></meter>
                            <span class="p">{format!("{p:.3}")}</span>
                            <Show when=move || s.run.live.with(Option::is_some)>
                                <button class="small" aria-label=format!("explain {a} instead") on:click={let a = a.clone(); move |_| explain_instead(a.clone(), false)}>"explain"</button>
                                <button class="small" aria-label=format!("explain the answer rather than {b}") on:click={let b = b.clone(); move |_| explain_instead(b.clone(), true)}>"rather than"</button>
                            </Show>
                        </li>
                    }
                })
                .collect_view()
        })
    };
    let is_demo = move || s.out.recorded.with(|r| r.as_ref().is_some_and(|r| super::model::is_demo(&r.model)));
    view! {
        <section class="answer" aria-labelledby="answer-title">
            <h2 id="answer-title">"Answer"</h2>
            <Show when=move || r().is_some() fallback=|| view! { <p class="hint">"No answer yet."</p> }>
                <div data-testid="result">
                <p class="said" data-testid="answer" aria-live="polite">{move || r().map(|r| format!("{} {}", r.answer_prefix, r.top.first().map(|t| word(&t.0)).unwrap_or_else(|| "?".into())))}</p>
                <p class="explained" data-testid="explained">{move || r().map(|r| match &r.contrast {
                    Some(c) => format!("Explaining \"{}\" rather than \"{}\" (scores of the logit difference)", word(&r.target), word(c)),
                    None => format!("Explaining \"{}\" (log-probability {:.3})", word(&r.target), r.target_log_prob),
                })}</p>
                {move || {
                    let split = s.out.split_words.get();
                    (!split.is_empty()).then(|| {
                        let words = split.iter().map(|(w, p)| format!("\"{w}\" (read as {})", p.iter().map(|x| word(x)).collect::<Vec<_>>().join(" + "))).collect::<Vec<_>>().join(", ");
                        let text = if is_demo() {
                            format!("The demo model never saw {words} as a whole word: its answer about it is a guess, and the map may be flat.")
                        } else {
                            format!("The model reads {words} in pieces.")
                        };
                        view! { <p class="warn" data-testid="split-words">{text}</p> }
                    })
                }}
                <ol class="top5" data-testid="top5" aria-label="The model's five most likely next words">{top}</ol>
                <p class="timing" data-testid="timing">{move || s.run.millis.get().map(|m| format!("Explained in {m:.0} ms; worker memory {}", s.run.memory.get().map(crate::files::human_bytes).unwrap_or_default()))}</p>
                </div>
            </Show>
        </section>
    }
}
