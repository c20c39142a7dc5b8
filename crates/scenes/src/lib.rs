//! Synthetic scenes: 1-4 named shapes in named colours on a textured, noisy background, with the
//! exact visible mask of every object and questions in the paper's form ("What is the color of
//! the circle?" / "The color of the circle is" / "red").
//!
//! One generator serves everything: `llava-lens scenes` writes the training data the Python
//! trainer reads, the CLI's held-out evaluations regenerate scenes of another seed in memory, and
//! the web app draws its gallery from it. Scene `i` of seed `s` is a pure function of `(s, i)`
//! and identical on every platform (integer RNG, no platform maths in the geometry decisions that
//! could flip a pixel: all tests are on f32 computed the same way everywhere).

mod background;
mod manifest;
mod palette;
mod scene;
mod shape;

pub use manifest::{ObjectRecord, QuestionRecord, SceneRecord};
pub use palette::{COLORS, Color};
pub use scene::{Object, Question, Scene, SceneSpec, generate, patch_coverage};
pub use shape::{SHAPES, Shape};

/// The answer word for a question about a shape that is not in the scene.
pub const ABSENT_ANSWER: &str = "none";
