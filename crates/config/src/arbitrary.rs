//! Random configurations for property tests (print then parse gives the same).

use proptest::test_runner::TestRng;
use rand::RngExt;

use crate::decode::{Id, StringMap};
use crate::model::{Image, ImageName, ImageSpec};
use crate::source::Sp;

pub struct Generator<'r> {
    pub rng: &'r mut TestRng,
    depth: u32,
}

impl<'r> Generator<'r> {
    pub fn new(rng: &'r mut TestRng) -> Self {
        Self { rng, depth: 0 }
    }

    /// A field that is present half of the time.
    pub fn maybe<T: Gen>(&mut self) -> Option<Sp<T>> {
        if self.depth > 6 || !self.rng.random_bool(0.5) {
            return None;
        }
        self.depth += 1;
        let v = T::generate(self);
        self.depth -= 1;
        Some(Sp::synthetic(v))
    }

    fn len(&mut self) -> usize {
        self.rng.random_range(0..4)
    }
}

pub trait Gen: Sized {
    fn generate(g: &mut Generator<'_>) -> Self;
}

/// Strings that are awkward to print: YAML keywords, numbers, indicators, lines.
const STRINGS: &[&str] = &[
    "",
    "getty",
    "/etc/resolv.conf",
    "true",
    "null",
    "~",
    "0755",
    "1.10",
    "-1",
    "a: b",
    "- item",
    "# not a comment",
    "multi\nline\ntext\n",
    "trailing space ",
    " leading",
    "quote'and\"double",
    "@pkg:./somewhere",
    "tab\there",
    "unicode ✓",
    "{braces}",
    "*star",
    "&amp",
    "!bang",
    "%percent",
    "`tick`",
];

impl Gen for String {
    fn generate(g: &mut Generator<'_>) -> Self {
        let i = g.rng.random_range(0..STRINGS.len());
        STRINGS[i].to_string()
    }
}

impl Gen for bool {
    fn generate(g: &mut Generator<'_>) -> Self {
        g.rng.random_bool(0.5)
    }
}

macro_rules! integer_gen {
    ($($ty:ty),*) => {$(
        impl Gen for $ty {
            fn generate(g: &mut Generator<'_>) -> Self {
                match g.rng.random_range(0..4) {
                    0 => <$ty>::MIN,
                    1 => <$ty>::MAX,
                    _ => g.rng.random::<$ty>(),
                }
            }
        }
    )*};
}
integer_gen!(i64, u64, u32, u16);

impl<T: Gen> Gen for Sp<T> {
    fn generate(g: &mut Generator<'_>) -> Self {
        Sp::synthetic(T::generate(g))
    }
}

impl<T: Gen> Gen for Vec<T> {
    fn generate(g: &mut Generator<'_>) -> Self {
        let n = g.len();
        g.depth += 1;
        let v = (0..n).map(|_| T::generate(g)).collect();
        g.depth -= 1;
        v
    }
}

impl Gen for StringMap {
    fn generate(g: &mut Generator<'_>) -> Self {
        let n = g.len();
        let mut entries: Vec<(Sp<String>, Sp<String>)> = Vec::new();
        for i in 0..n {
            let key = format!("key{i}.{}", String::generate(g).len());
            entries.push((Sp::synthetic(key), Sp::synthetic(String::generate(g))));
        }
        StringMap(entries)
    }
}

impl Gen for Id {
    fn generate(g: &mut Generator<'_>) -> Self {
        if g.rng.random_bool(0.5) {
            Id::Number(g.rng.random())
        } else {
            Id::Name(String::generate(g))
        }
    }
}

const REFERENCES: &[&str] = &[
    "docker.io/library/alpine:3.20",
    "docker.io/linuxkit/getty:05eca453695984a69617f1f1f0bcdae7f7032967",
    "localhost:5000/slipway/init",
    "ghcr.io/example/tool@sha256:0000000000000000000000000000000000000000000000000000000000000000",
];

impl Gen for ImageName {
    fn generate(g: &mut Generator<'_>) -> Self {
        let i = g.rng.random_range(0..REFERENCES.len());
        match slipway_reference::Reference::parse(REFERENCES[i]) {
            Ok(r) => ImageName::Reference(r),
            Err(_) => unreachable_reference(),
        }
    }
}

#[allow(clippy::panic)]
fn unreachable_reference() -> ImageName {
    panic!("a test reference failed to parse")
}

impl Gen for Image {
    fn generate(g: &mut Generator<'_>) -> Self {
        Image {
            span: Default::default(),
            name: Sp::synthetic(String::generate(g)),
            image: Sp::synthetic(ImageName::generate(g)),
            spec: ImageSpec::generate(g),
        }
    }
}
