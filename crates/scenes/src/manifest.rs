//! The JSONL manifest of `llava-lens scenes`: one line per scene, naming its image and label map
//! and listing objects and questions. The Python trainer reads it; so can anyone else.

use serde::{Deserialize, Serialize};

use crate::scene::Scene;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneRecord {
    pub seed: u64,
    pub index: u64,
    /// Image file, relative to the manifest.
    pub image: String,
    /// Label map (8-bit grey PNG): 0 = background, k = object with `id` k visible there.
    pub mask: String,
    pub size: u32,
    pub objects: Vec<ObjectRecord>,
    pub questions: Vec<QuestionRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectRecord {
    pub id: u8,
    pub shape: String,
    pub color: String,
    pub rgb: [u8; 3],
    pub center: [f32; 2],
    pub radius: f32,
    pub rotation_deg: f32,
    pub pixels: usize,
    pub bbox: [u32; 4],
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuestionRecord {
    pub question: String,
    pub answer_prefix: String,
    pub answer: String,
    pub shape: String,
    /// Object asked about; absent for a shape not in the scene.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<u8>,
}

impl Scene {
    /// File stem of this scene in a `scenes` folder.
    pub fn stem(&self) -> String {
        format!("{:06}", self.index)
    }

    pub fn record(&self) -> SceneRecord {
        SceneRecord {
            seed: self.seed,
            index: self.index,
            image: format!("{}.png", self.stem()),
            mask: format!("{}.mask.png", self.stem()),
            size: self.image.width(),
            objects: self
                .objects
                .iter()
                .map(|o| ObjectRecord {
                    id: o.id,
                    shape: o.shape.name().into(),
                    color: o.color.name.into(),
                    rgb: o.color.rgb,
                    center: o.center,
                    radius: o.radius,
                    rotation_deg: o.rotation_deg,
                    pixels: o.pixels,
                    bbox: o.bbox,
                })
                .collect(),
            questions: self
                .questions
                .iter()
                .map(|q| QuestionRecord {
                    question: q.question.clone(),
                    answer_prefix: q.answer_prefix.clone(),
                    answer: q.answer.clone(),
                    shape: q.shape.name().into(),
                    object: q.object,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SceneSpec, generate};

    #[test]
    fn record_round_trips_through_json() {
        let s = generate(1, 4, &SceneSpec::default());
        let r = s.record();
        let line = serde_json::to_string(&r).unwrap();
        assert!(!line.contains('\n'));
        let back: SceneRecord = serde_json::from_str(&line).unwrap();
        assert_eq!(back, r);
        assert_eq!(r.objects.len(), s.objects.len());
    }
}
