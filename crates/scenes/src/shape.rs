//! The shapes and their exact inside tests. A pixel belongs to an object when its centre is
//! inside the shape: no anti-aliasing, so the mask is exactly the painted pixels.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    Circle,
    Square,
    Triangle,
    Star,
    Cross,
}

pub const SHAPES: [Shape; 5] = [Shape::Circle, Shape::Square, Shape::Triangle, Shape::Star, Shape::Cross];

/// A star's inner vertices sit at this fraction of its outer radius.
const STAR_INNER: f32 = 0.45;

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Shape::Circle => "circle",
            Shape::Square => "square",
            Shape::Triangle => "triangle",
            Shape::Star => "star",
            Shape::Cross => "cross",
        }
    }

    pub fn by_name(name: &str) -> Option<Shape> {
        SHAPES.iter().copied().find(|s| s.name() == name)
    }

    /// Radius (in units of the object's size) of the circle that holds the shape at any
    /// rotation: placement keeps this circle inside the image.
    pub fn bound(self) -> f32 {
        match self {
            Shape::Square => 0.8 * std::f32::consts::SQRT_2,
            _ => 1.0,
        }
    }

    /// Whether the point (u, v), in the object's frame (centre at 0, size 1, y down, already
    /// un-rotated), is inside the shape.
    pub fn contains(self, u: f32, v: f32) -> bool {
        match self {
            Shape::Circle => u * u + v * v <= 1.0,
            Shape::Square => u.abs() <= 0.8 && v.abs() <= 0.8,
            Shape::Cross => (u.abs() <= 0.3 && v.abs() <= 0.95) || (v.abs() <= 0.3 && u.abs() <= 0.95),
            Shape::Triangle => inside_polygon(&TRIANGLE, u, v),
            Shape::Star => inside_polygon(&star(), u, v),
        }
    }
}

/// Upright equilateral triangle inscribed in the unit circle (apex up: y grows downwards).
const TRIANGLE: [(f32, f32); 3] = [(0.0, -1.0), (0.866_025_4, 0.5), (-0.866_025_4, 0.5)];

/// Five-pointed star, first point up, alternating outer and inner vertices.
fn star() -> [(f32, f32); 10] {
    let mut p = [(0.0, 0.0); 10];
    for (i, q) in p.iter_mut().enumerate() {
        let r = if i % 2 == 0 { 1.0 } else { STAR_INNER };
        let a = -std::f32::consts::FRAC_PI_2 + i as f32 * std::f32::consts::PI / 5.0;
        *q = (r * a.cos(), r * a.sin());
    }
    p
}

/// Even-odd rule (works for the concave star).
fn inside_polygon(poly: &[(f32, f32)], x: f32, y: f32) -> bool {
    let mut inside = false;
    let mut j = poly.len() - 1;
    for i in 0..poly.len() {
        let (xi, yi) = poly[i];
        let (xj, yj) = poly[j];
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        j = i;
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Area fraction of each shape on a fine grid over [-1.2, 1.2]^2, against the closed form.
    #[test]
    fn areas_match_geometry() {
        let n = 600;
        let area = |s: Shape| {
            let mut hits = 0usize;
            for i in 0..n {
                for j in 0..n {
                    let u = -1.2 + 2.4 * (i as f32 + 0.5) / n as f32;
                    let v = -1.2 + 2.4 * (j as f32 + 0.5) / n as f32;
                    hits += s.contains(u, v) as usize;
                }
            }
            hits as f32 * (2.4 * 2.4) / (n * n) as f32
        };
        let star_area = 5.0 * 1.0 * STAR_INNER * (std::f32::consts::PI / 5.0).sin();
        let expected = [
            (Shape::Circle, std::f32::consts::PI),
            (Shape::Square, 1.6 * 1.6),
            (Shape::Triangle, 3.0 * 3f32.sqrt() / 4.0),
            (Shape::Star, star_area),
            (Shape::Cross, 2.0 * 0.6 * 1.9 - 0.6 * 0.6),
        ];
        for (s, want) in expected {
            let got = area(s);
            assert!((got - want).abs() < 0.01 * want, "{s:?}: area {got}, expected {want}");
        }
    }

    #[test]
    fn names_round_trip_and_shapes_fit_their_bound() {
        for s in SHAPES {
            assert_eq!(Shape::by_name(s.name()), Some(s));
            for k in 0..360 {
                let a = (k as f32).to_radians();
                let r = s.bound() + 1e-3;
                assert!(!s.contains(r * a.cos(), r * a.sin()), "{s:?} pokes out of its bound at {k} deg");
            }
        }
    }
}
