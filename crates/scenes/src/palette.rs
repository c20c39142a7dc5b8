//! The named colours objects are painted in. Each is far from the others and from the muted
//! background tones, so the colour word is decidable from any one pixel of the object.

/// A named sRGB colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Color {
    pub name: &'static str,
    pub rgb: [u8; 3],
}

pub const COLORS: [Color; 8] = [
    Color { name: "red", rgb: [220, 30, 35] },
    Color { name: "green", rgb: [30, 170, 60] },
    Color { name: "blue", rgb: [35, 75, 225] },
    Color { name: "yellow", rgb: [240, 220, 35] },
    Color { name: "orange", rgb: [245, 135, 20] },
    Color { name: "purple", rgb: [140, 45, 185] },
    Color { name: "white", rgb: [248, 248, 248] },
    Color { name: "black", rgb: [18, 18, 18] },
];

impl Color {
    pub fn by_name(name: &str) -> Option<Color> {
        COLORS.iter().copied().find(|c| c.name == name)
    }
}
