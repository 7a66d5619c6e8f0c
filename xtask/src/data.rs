//! `cargo xtask data kws [--force]`: the keyword-spotting data set (12
//! classes: the digits, `silence`, `unknown`), built reproducibly from pinned
//! Debian packages into `$MOTE_CACHE/kws/v1` (default `~/.cache/mote/kws/v1`),
//! never into the repository. docs/DATA-KWS.md is the recipe.
//!
//! - `test/`: one real speaker (`asterisk-core-sounds-en-wav`), never used for
//!   training, calibration, early stopping or model selection;
//! - `train/`, `val/`: espeak-ng, the validation split spoken by base voices
//!   and variants that training never hears;
//! - `noise/`: alsa-utils' `Noise.wav` and noise synthesized here (seeded);
//!   `noise/speech/`: alsa-utils' spoken channel names, background only.
//!
//! Every clip is planned by a pure function ([`plan`]) before anything runs,
//! so the manifest is the same bytes on every run, and a second run checks
//! the cache against the plan instead of building again.

use crate::cmd::{output, two_at_a_time};
use anyhow::{bail, ensure, Context, Result};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The classes, in the model's output order.
pub const CLASSES: [&str; 12] = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "silence",
    "unknown",
];

/// The sample rate of every clip (mono, signed 16-bit PCM).
const RATE: u32 = 16_000;

/// The data set's version: a change to anything below that changes a clip
/// is a new version directory, never an overwrite of `v1`.
const VERSION_DIR: &str = "kws/v1";

/// A Debian package, pinned.
#[derive(Debug, Clone, Copy)]
struct Deb {
    name: &'static str,
    version: &'static str,
    /// The architecture asked of `apt-get download` (`all` or `amd64`).
    arch: &'static str,
    /// sha256 of the `.deb`, as the Debian archive lists it.
    sha256: &'static str,
    license: &'static str,
    taken: &'static str,
}

/// The test speaker: Allison Smith's recordings for Asterisk.
const ASTERISK: Deb = Deb {
    name: "asterisk-core-sounds-en-wav",
    version: "1.6.1-1",
    arch: "all",
    sha256: "2be3ea287d83299d143815fa804f11179a75b7affd4a758b98b55f5afc18a35d",
    license: "CC-BY-SA-3.0 (recorded by Allison Smith)",
    taken: "usr/share/asterisk/sounds/en_US_f_Allison/digits/: 0-9 and oh (keywords), \
            10-19, 20-90, hundred, thousand, million, billion and the ordinals h-* \
            (unknown); 8 kHz, resampled to 16 kHz; test split only",
};

/// `Noise.wav` and the spoken channel names.
const ALSA_UTILS: Deb = Deb {
    name: "alsa-utils",
    version: "1.2.8-1",
    arch: "amd64",
    sha256: "fb24eb1a318228b974efbef726190dd90c6106a208814a3ee8f5d69b91ee0ba4",
    license: "GPL-2",
    taken: "usr/share/sounds/alsa/: Noise.wav (noise/) and the eight spoken channel \
            names (noise/speech/, a real voice: background only, never a keyword); \
            48 kHz, resampled to 16 kHz",
};

/// The packages that shape the synthesized and resampled bytes: installed
/// (not downloaded), so their versions are checked, not their hashes.
const TOOLS: [Deb; 5] = [
    Deb {
        name: "espeak-ng",
        version: "1.51+dfsg-10+deb12u2",
        arch: "amd64",
        sha256: "a11396a690f85f55e6e6b2965505237ddf3dc95c51936aa61de936f1ccf8f4d0",
        license: "GPL-3+",
        taken: "the program: train/ and val/ speech",
    },
    Deb {
        name: "espeak-ng-data",
        version: "1.51+dfsg-10+deb12u2",
        arch: "amd64",
        sha256: "573f5661c6a5adcf949018baad158c4c773bf5579390ee5235a890f1cd694106",
        license: "GPL-3+",
        taken: "the voices, variants and phoneme tables",
    },
    Deb {
        name: "libespeak-ng1",
        version: "1.51+dfsg-10+deb12u2",
        arch: "amd64",
        sha256: "2b127a95b50d92cbd7a615968d2ac1566e1cbc87e27bcda0c2894afb2407c6d2",
        license: "GPL-3+",
        taken: "the synthesizer library",
    },
    Deb {
        name: "sox",
        version: "14.4.2+git20190427-3.5",
        arch: "amd64",
        sha256: "6793a4824f96f0008be4d5defba8b07a0f3f9054708b0ed2332a4ede4c43b5b5",
        license: "GPL-2+ or LGPL-2.1+",
        taken: "resampling to 16 kHz mono s16 and silence trimming (sox -R -D)",
    },
    Deb {
        name: "libsox3",
        version: "14.4.2+git20190427-3.5",
        arch: "amd64",
        sha256: "0e2d255fce05d3caca5abd00a2c44f2c0e3708bd0f7b3a9954ed371ad6e71204",
        license: "GPL-2+ or LGPL-2.1+",
        taken: "the sox library",
    },
];

/// Where the test speaker's digit folder lands in the unpacked package.
const ASTERISK_DIGITS: &str = "usr/share/asterisk/sounds/en_US_f_Allison/digits";

/// Where alsa-utils' sounds land in the unpacked package.
const ALSA_SOUNDS: &str = "usr/share/sounds/alsa";

/// The test split's keyword recordings: file stem, label. `oh` is how
/// people often say zero in a digit string.
const TEST_KEYWORDS: [(&str, &str); 11] = [
    ("0", "zero"),
    ("oh", "zero"),
    ("1", "one"),
    ("2", "two"),
    ("3", "three"),
    ("4", "four"),
    ("5", "five"),
    ("6", "six"),
    ("7", "seven"),
    ("8", "eight"),
    ("9", "nine"),
];

/// The test split's `unknown` recordings: every other number word in the
/// folder, cardinal and ordinal (`h-7` is "seventh": a hard negative).
const TEST_UNKNOWN: [&str; 53] = [
    "10",
    "11",
    "12",
    "13",
    "14",
    "15",
    "16",
    "17",
    "18",
    "19",
    "20",
    "30",
    "40",
    "50",
    "60",
    "70",
    "80",
    "90",
    "hundred",
    "thousand",
    "million",
    "billion",
    "h-1",
    "h-2",
    "h-3",
    "h-4",
    "h-5",
    "h-6",
    "h-7",
    "h-8",
    "h-9",
    "h-10",
    "h-11",
    "h-12",
    "h-13",
    "h-14",
    "h-15",
    "h-16",
    "h-17",
    "h-18",
    "h-19",
    "h-20",
    "h-30",
    "h-40",
    "h-50",
    "h-60",
    "h-70",
    "h-80",
    "h-90",
    "h-hundred",
    "h-thousand",
    "h-million",
    "h-billion",
];

/// The text espeak-ng says for each digit class (never "oh": as text it is
/// an interjection as often as a zero).
const DIGIT_WORDS: [(&str, &str); 10] = [
    ("zero", "zero"),
    ("one", "one"),
    ("two", "two"),
    ("three", "three"),
    ("four", "four"),
    ("five", "five"),
    ("six", "six"),
    ("seven", "seven"),
    ("eight", "eight"),
    ("nine", "nine"),
];

/// The `unknown` words espeak-ng says. No digit and no exact homophone of
/// one ("won", "to", "too", "for", "ate", "oh"): those would teach the model
/// that one sound is two classes. Near misses are wanted.
#[rustfmt::skip]
const UNKNOWN_WORDS: [&str; 83] = [
    // Speech Commands' other words.
    "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "bed", "bird",
    "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow", "learn", "follow",
    "forward", "backward", "visual",
    // Numbers other than 0-9 (the test speaker says these too).
    "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
    "eighteen", "nineteen", "twenty", "thirty", "forty", "fifty", "sixty", "seventy",
    "eighty", "ninety", "hundred", "thousand", "million", "billion",
    // Ordinals (so are the test speaker's h-* files).
    "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth",
    "tenth",
    // Near misses of the digits.
    "hero", "free", "tea", "fine", "line", "nice", "night", "fun", "run", "sun", "done",
    "shoe", "true", "new", "door", "more", "fire", "hive", "fix", "sick", "heaven", "late",
    "wait", "tin", "sticks", "mine",
];

/// espeak-ng base voices heard in training.
const TRAIN_BASES: [&str; 6] = [
    "en-gb",
    "en-us",
    "en-gb-scotland",
    "en-gb-x-gbclan",
    "en-gb-x-rp",
    "en-us-nyc",
];

/// Base voices held out for validation (Caribbean, West Midlands).
const VAL_BASES: [&str; 2] = ["en-029", "en-gb-x-gbcwmd"];

/// Variants heard in training; `""` is the base voice unchanged.
const TRAIN_VARIANTS: [&str; 82] = [
    "",
    "Alex",
    "Alicia",
    "Andy",
    "Annie",
    "AnxiousAndy",
    "Demonic",
    "Denis",
    "Diogo",
    "Gene",
    "Henrique",
    "Jacky",
    "Lee",
    "Marco",
    "Mario",
    "Mike",
    "Nguyen",
    "RicishayMax",
    "RicishayMax2",
    "RicishayMax3",
    "Storm",
    "Tweaky",
    "UniRobot",
    "adam",
    "anika",
    "announcer",
    "antonio",
    "aunty",
    "benjamin",
    "boris",
    "david",
    "ed",
    "edward",
    "edward2",
    "f1",
    "f2",
    "f4",
    "f5",
    "fast",
    "grandma",
    "grandpa",
    "gustave",
    "iven",
    "iven2",
    "iven4",
    "kaukovalta",
    "klatt",
    "klatt2",
    "klatt3",
    "klatt5",
    "klatt6",
    "linda",
    "m1",
    "m2",
    "m3",
    "m5",
    "m6",
    "m8",
    "marcelo",
    "max",
    "michel",
    "miguel",
    "pablo",
    "paul",
    "pedro",
    "rob",
    "robert",
    "robosoft",
    "robosoft2",
    "robosoft3",
    "robosoft4",
    "robosoft6",
    "robosoft7",
    "robosoft8",
    "sandro",
    "shelby",
    "steph",
    "steph3",
    "victor",
    "whisper",
    "zac",
    "Gene2",
];

/// Variants held out for validation: seven female, twelve male or other
/// (one whisper, one croak, one Klatt, one robot among them).
const VAL_VARIANTS: [&str; 20] = [
    "f3",
    "m4",
    "m7",
    "klatt4",
    "whisperf",
    "croak",
    "steph2",
    "Andrea",
    "belinda",
    "Michael",
    "iven3",
    "robosoft5",
    "john",
    "quincy",
    "Hugo",
    "travis",
    "norbert",
    "anikaRobot",
    "caleb",
    "Mr serious",
];

/// espeak-ng speeds (`-s`, words per minute) and pitches (`-p`, 0-99),
/// inclusive, drawn uniformly.
const SPEEDS: (u32, u32) = (120, 200);
const PITCHES: (u32, u32) = (20, 80);

/// espeak-ng's amplitude (`-a`, default 100): at 100, and even 50, many
/// variants clip inside espeak-ng (a third to four fifths of the clips of
/// `iven`, `Jacky`, `antonio`, `paul`, `ed`); at 30 none of them does.
const AMPLITUDE: &str = "30";

/// Utterances per digit class and of `unknown`, per split.
const TRAIN_PER_DIGIT: usize = 250;
const TRAIN_UNKNOWN: usize = 1500;
const VAL_PER_DIGIT: usize = 50;
const VAL_UNKNOWN: usize = 300;

/// The seeds of the train and val voice draws and of the noise.
const TRAIN_SEED: u64 = 0x6b77_735f_7472_6e01;
const VAL_SEED: u64 = 0x6b77_735f_7661_6c01;
const NOISE_SEED: u64 = 0x6b77_735f_6e6f_6901;

/// Seconds of each synthesized noise.
const NOISE_SECONDS: u32 = 10;

/// alsa-utils' spoken channel names.
const ALSA_SPEECH: [&str; 8] = [
    "Front_Center",
    "Front_Left",
    "Front_Right",
    "Rear_Center",
    "Rear_Left",
    "Rear_Right",
    "Side_Left",
    "Side_Right",
];

/// The splitmix64 generator (Steele, Lea, Flood 2014): small, seeded, the
/// same sequence everywhere.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0; the modulo bias is below 2^-50 here).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// A number in `lo..=hi`.
    pub fn between(&mut self, (lo, hi): (u32, u32)) -> u32 {
        lo + self.below((hi - lo + 1) as usize) as u32
    }

    /// A number in `[-1, 1)`.
    pub fn signed_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

/// The synthesized noises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Noise {
    White,
    Pink,
    Brown,
    /// Mains hum at this frequency, with harmonics.
    Hum(u32),
}

/// How one clip is made.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Make {
    /// espeak-ng says `text`.
    Espeak { text: &'static str },
    /// A WAV file of an unpacked package, resampled.
    Package { deb: &'static str, file: String },
    /// Noise written here.
    Synth(Noise),
}

/// One clip: a manifest line and how to make its file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Clip {
    split: &'static str,
    label: &'static str,
    path: String,
    source: String,
    voice: String,
    speed: String,
    pitch: String,
    make: Make,
}

/// The manifest's header line.
const MANIFEST_HEADER: &str = "split\tlabel\trelative_path\tsource\tvoice\tspeed\tpitch";

impl Clip {
    /// The manifest line (no newline).
    fn manifest_line(&self) -> String {
        [
            self.split,
            self.label,
            &self.path,
            &self.source,
            &self.voice,
            &self.speed,
            &self.pitch,
        ]
        .join("\t")
    }
}

/// A voice `BASE` or `BASE+VARIANT`.
fn voice_name(base: &str, variant: &str) -> String {
    if variant.is_empty() {
        base.to_string()
    } else {
        format!("{base}+{variant}")
    }
}

/// The espeak-ng clips of one split: each digit `per_digit` times, then
/// `unknown` words in turn, each with a voice, variant, speed and pitch drawn
/// from `seed`.
fn espeak_clips(
    split: &'static str,
    bases: &[&str],
    variants: &[&str],
    per_digit: usize,
    unknown: usize,
    seed: u64,
) -> Vec<Clip> {
    let mut rng = SplitMix64::new(seed);
    let mut clip = |label: &'static str, text: &'static str, n: usize| {
        let base = bases[rng.below(bases.len())];
        let variant = variants[rng.below(variants.len())];
        let speed = rng.between(SPEEDS);
        let pitch = rng.between(PITCHES);
        Clip {
            split,
            label,
            path: format!("{split}/{label}/{n:04}.wav"),
            source: format!("espeak-ng:{text}"),
            voice: voice_name(base, variant),
            speed: speed.to_string(),
            pitch: pitch.to_string(),
            make: Make::Espeak { text },
        }
    };
    let mut clips = Vec::new();
    for (label, text) in DIGIT_WORDS {
        for n in 0..per_digit {
            clips.push(clip(label, text, n));
        }
    }
    for n in 0..unknown {
        clips.push(clip("unknown", UNKNOWN_WORDS[n % UNKNOWN_WORDS.len()], n));
    }
    clips
}

/// A clip taken from an unpacked package.
fn package_clip(
    split: &'static str,
    label: &'static str,
    path: String,
    deb: &Deb,
    file: String,
    voice: &str,
) -> Clip {
    Clip {
        split,
        label,
        path,
        source: format!("{}:{file}", deb.name),
        voice: voice.to_string(),
        speed: "-".into(),
        pitch: "-".into(),
        make: Make::Package {
            deb: deb.name,
            file,
        },
    }
}

/// Every clip of the data set, in manifest order: train, val, test, noise.
fn plan() -> Vec<Clip> {
    let mut clips = espeak_clips(
        "train",
        &TRAIN_BASES,
        &TRAIN_VARIANTS,
        TRAIN_PER_DIGIT,
        TRAIN_UNKNOWN,
        TRAIN_SEED,
    );
    clips.extend(espeak_clips(
        "val",
        &VAL_BASES,
        &VAL_VARIANTS,
        VAL_PER_DIGIT,
        VAL_UNKNOWN,
        VAL_SEED,
    ));
    let speaker = "en_US_f_Allison";
    let test = TEST_KEYWORDS
        .iter()
        .copied()
        .chain(TEST_UNKNOWN.iter().map(|s| (*s, "unknown")));
    for (stem, label) in test {
        clips.push(package_clip(
            "test",
            label,
            format!("test/{label}/{stem}.wav"),
            &ASTERISK,
            format!("{ASTERISK_DIGITS}/{stem}.wav"),
            speaker,
        ));
    }
    clips.push(package_clip(
        "noise",
        "noise",
        "noise/alsa_noise.wav".into(),
        &ALSA_UTILS,
        format!("{ALSA_SOUNDS}/Noise.wav"),
        "-",
    ));
    for (name, noise) in [
        ("white", Noise::White),
        ("pink", Noise::Pink),
        ("brown", Noise::Brown),
        ("hum50", Noise::Hum(50)),
        ("hum60", Noise::Hum(60)),
    ] {
        clips.push(Clip {
            split: "noise",
            label: "noise",
            path: format!("noise/{name}.wav"),
            source: format!("xtask-data:{name}"),
            voice: "-".into(),
            speed: "-".into(),
            pitch: "-".into(),
            make: Make::Synth(noise),
        });
    }
    for name in ALSA_SPEECH {
        clips.push(package_clip(
            "noise",
            "speech",
            format!("noise/speech/{name}.wav"),
            &ALSA_UTILS,
            format!("{ALSA_SOUNDS}/{name}.wav"),
            "alsa-utils-speaker",
        ));
    }
    clips
}

/// The manifest file's text.
fn manifest_text(clips: &[Clip]) -> String {
    let mut s = String::from(MANIFEST_HEADER);
    s.push('\n');
    for c in clips {
        s.push_str(&c.manifest_line());
        s.push('\n');
    }
    s
}

/// `$MOTE_CACHE`, default `~/.cache/mote`: `mote_host::fetch`'s cache.
fn cache_dir() -> PathBuf {
    mote_host::fetch::cache_dir()
}

/// `cargo xtask data …`.
pub fn main(args: &[String]) -> Result<()> {
    let usage = "usage: cargo xtask data kws [--force]";
    let Some(what) = args.first() else {
        bail!("{usage}");
    };
    ensure!(what == "kws", "unknown data set {what:?}; {usage}");
    let mut force = false;
    for a in &args[1..] {
        match a.as_str() {
            "--force" => force = true,
            _ => bail!("unknown argument {a:?}; {usage}"),
        }
    }
    kws(force)
}

/// Builds the data set unless it is there (or `force`), then checks it
/// against the plan and prints its summary.
fn kws(force: bool) -> Result<()> {
    let start = Instant::now();
    let out = cache_dir().join(VERSION_DIR);
    let clips = plan();
    if out.join("manifest.tsv").exists() && !force {
        eprintln!("{} is there: checking it (--force rebuilds)", out.display());
    } else {
        build(&out, &clips)?;
    }
    let seconds = check(&out, &clips)?;
    print!("{}", summary(&clips, &seconds));
    println!(
        "{}: {:.1} s in all",
        out.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Installs espeak-ng and sox when missing, then refuses any version but the
/// pinned ones; returns `espeak-ng --version`.
fn tools() -> Result<String> {
    crate::setup::install_missing(&["espeak-ng", "sox"])?;
    let pins: Vec<String> = TOOLS
        .iter()
        .map(|t| format!("{}={}", t.name, t.version))
        .collect();
    for t in &TOOLS {
        let got = Command::new("dpkg-query")
            .args(["-W", "-f=${Version}", t.name])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        ensure!(
            got == t.version,
            "{} {} is installed, but the data set is pinned to {} {} (its bytes depend on it): \
             install the pinned versions with `apt-get install {}`, or change the pins in \
             xtask/src/data.rs and make the data set kws/v2",
            t.name,
            if got.is_empty() { "(none)" } else { &got },
            t.name,
            t.version,
            pins.join(" ")
        );
    }
    let version = output(Command::new("espeak-ng").arg("--version"))?;
    // Every voice and variant the plan uses must be installed: espeak-ng
    // would otherwise fail on the first clip that asks for it.
    let voices = output(Command::new("espeak-ng").arg("--voices=en"))?;
    let languages: std::collections::BTreeSet<&str> = voices
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|l| *l != "variant")
        .collect();
    for base in TRAIN_BASES.iter().chain(&VAL_BASES) {
        ensure!(
            languages.contains(base),
            "espeak-ng has no voice {base:?} (espeak-ng --voices=en lists {languages:?}); \
             is espeak-ng-data {} installed?",
            TOOLS[1].version
        );
    }
    let variant_list = output(Command::new("espeak-ng").arg("--voices=variant"))?;
    let variants: std::collections::BTreeSet<&str> = variant_list
        .lines()
        .filter_map(|l| l.find("!v/").map(|i| l[i + 3..].trim_end()))
        .filter_map(|rest| rest.split("  ").next())
        .collect();
    for v in TRAIN_VARIANTS.iter().chain(&VAL_VARIANTS) {
        ensure!(
            v.is_empty() || variants.contains(v),
            "espeak-ng has no variant {v:?} (espeak-ng --voices=variant lists {variants:?})"
        );
    }
    Ok(version.trim().to_string())
}

/// sha256 of a file, lowercase hex.
fn sha256_file(p: &Path) -> Result<String> {
    let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        }))
}

/// `apt-get download` of the pinned `deb` into `dir`, its hash checked,
/// unpacked into `dir/NAME`; returns the unpacked directory.
fn fetch_deb(deb: &Deb, dir: &Path) -> Result<PathBuf> {
    let spec = format!("{}:{}={}", deb.name, deb.arch, deb.version);
    let download = || {
        output(
            Command::new("apt-get")
                .args(["download", "-q", &spec])
                .current_dir(dir),
        )
    };
    eprintln!("$ apt-get download {spec}");
    if download().is_err() {
        // A machine whose package lists are missing or stale: update once.
        eprintln!("apt-get download failed; updating the package lists and trying again");
        let mut update = Command::new("apt-get");
        update.args(["update", "-q"]);
        let _ = update.status();
        download().with_context(|| {
            format!(
                "apt-get download {spec} failed (is the Debian archive reachable, and does it \
                 still hold version {}?)",
                deb.version
            )
        })?;
    }
    let file = dir.join(format!(
        "{}_{}_{}.deb",
        deb.name,
        deb.version.replace(':', "%3a"),
        deb.arch
    ));
    let got = sha256_file(&file).with_context(|| format!("apt-get download {spec}"))?;
    ensure!(
        got == deb.sha256,
        "sha256 mismatch for Debian package {} {}: expected {}, got {} ({}); the archive's \
         file is not the pinned one",
        deb.name,
        deb.version,
        deb.sha256,
        got,
        file.display()
    );
    let unpacked = dir.join(deb.name);
    let mut x = Command::new("dpkg-deb");
    x.arg("-x").arg(&file).arg(&unpacked);
    output(&mut x).with_context(|| format!("unpacking {}", file.display()))?;
    std::fs::remove_file(&file)?;
    Ok(unpacked)
}

/// `sox -R -D IN -r 16000 -c 1 -b 16 -e signed-integer OUT [effects]`:
/// repeatable (`-R`), without dither (`-D`: silence stays digital zero).
fn sox(input: &Path, out: &Path, effects: &[&str]) -> Result<()> {
    let mut c = Command::new("sox");
    c.args(["-R", "-D"])
        .arg(input)
        .args(["-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer"])
        .arg(out)
        .args(effects);
    output(&mut c).map(drop)
}

/// Trims leading and trailing silence below -60 dBFS (0.1 %): espeak-ng's
/// pauses are digital zeros, and a higher threshold would clip the weak
/// fricatives of "five", "four", "three" and "six".
const TRIM: [&str; 10] = [
    "silence", "1", "0.01", "0.1%", "reverse", "silence", "1", "0.01", "0.1%", "reverse",
];

/// The shortest trimmed clip kept (10 ms); shorter, the untrimmed one is kept.
const MIN_TRIMMED_FRAMES: u64 = 160;

/// Makes one clip's file under `out`, with scratch files in `tmp`.
fn make(clip: &Clip, out: &Path, tmp: &Path, unpacked: &BTreeMap<&str, PathBuf>) -> Result<()> {
    let dest = out.join(&clip.path);
    match &clip.make {
        Make::Espeak { text } => {
            let raw = tmp.join(clip.path.replace('/', "_"));
            let mut c = Command::new("espeak-ng");
            c.args([
                "-v",
                &clip.voice,
                "-s",
                &clip.speed,
                "-p",
                &clip.pitch,
                "-a",
                AMPLITUDE,
                "-w",
            ])
            .arg(&raw)
            .arg(text);
            output(&mut c).context("espeak-ng failed")?;
            let raw_frames = wav_info(&raw)?.frames;
            ensure!(raw_frames > 0, "espeak-ng wrote no audio");
            sox(&raw, &dest, &TRIM)?;
            if wav_info(&dest)?.frames < MIN_TRIMMED_FRAMES {
                sox(&raw, &dest, &[])?;
            }
            std::fs::remove_file(&raw)?;
        }
        Make::Package { deb, file } => {
            let root = unpacked
                .get(deb)
                .with_context(|| format!("{deb} was not unpacked"))?;
            let src = root.join(file);
            ensure!(src.exists(), "{deb} has no {file}");
            sox(&src, &dest, &[])?;
        }
        Make::Synth(noise) => write_wav(&dest, &synth_noise(*noise))?,
    }
    Ok(())
}

/// Builds every clip into `out` (through `out.partial`, renamed at the end:
/// an interrupted build never looks finished).
fn build(out: &Path, clips: &[Clip]) -> Result<()> {
    let start = Instant::now();
    let espeak_version = tools()?;
    let partial = out.with_extension("partial");
    if partial.exists() {
        std::fs::remove_dir_all(&partial)
            .with_context(|| format!("removing {}", partial.display()))?;
    }
    let tmp = partial.join(".tmp");
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut unpacked = BTreeMap::new();
    for deb in [ASTERISK, ALSA_UTILS] {
        unpacked.insert(deb.name, fetch_deb(&deb, &tmp)?);
    }
    let dirs: std::collections::BTreeSet<&Path> = clips
        .iter()
        .filter_map(|c| Path::new(&c.path).parent())
        .collect();
    for d in dirs {
        std::fs::create_dir_all(partial.join(d))?;
    }
    let synth_start = Instant::now();
    eprintln!("making {} clips, two at a time", clips.len());
    // After the first failure the other clips are skipped, not made in vain.
    let failed = std::sync::atomic::AtomicBool::new(false);
    let results = two_at_a_time(clips, |c| {
        if failed.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        let r = make(c, &partial, &tmp, &unpacked).with_context(|| {
            format!(
                "making {} ({} voice {} speed {} pitch {})",
                c.path, c.source, c.voice, c.speed, c.pitch
            )
        });
        if r.is_err() {
            failed.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Some(r)
    });
    for r in results.into_iter().flatten() {
        r?;
    }
    let synth_seconds = synth_start.elapsed().as_secs_f64();
    std::fs::remove_dir_all(&tmp)?;
    std::fs::write(partial.join("manifest.tsv"), manifest_text(clips))?;
    std::fs::write(partial.join("SOURCES.txt"), sources_text(&espeak_version))?;
    if out.exists() {
        std::fs::remove_dir_all(out).with_context(|| format!("removing {}", out.display()))?;
    }
    std::fs::rename(&partial, out)
        .with_context(|| format!("renaming {} to {}", partial.display(), out.display()))?;
    eprintln!(
        "built in {:.1} s ({:.1} s making the clips)",
        start.elapsed().as_secs_f64(),
        synth_seconds
    );
    Ok(())
}

/// SOURCES.txt: every source, its version, hash, license and what was taken.
fn sources_text(espeak_version: &str) -> String {
    let mut s = String::from(
        "Sources of the keyword-spotting data set kws/v1 (cargo xtask data kws; \
         docs/DATA-KWS.md)\n\n",
    );
    let mut deb = |d: &Deb, how: &str| {
        let _ = writeln!(
            s,
            "package: {} (Debian bookworm, {how})\nversion: {}\nsha256:  {} ({}_{}_{}.deb)\n\
             license: {}\ntaken:   {}\n",
            d.name, d.version, d.sha256, d.name, d.version, d.arch, d.license, d.taken
        );
    };
    deb(&ASTERISK, "apt-get download, sha256 checked");
    deb(&ALSA_UTILS, "apt-get download, sha256 checked");
    for t in &TOOLS {
        deb(t, "installed, version checked");
    }
    let _ = writeln!(
        s,
        "espeak-ng --version: {espeak_version}\n\n\
         package: xtask/src/data.rs (this repository)\nlicense: MIT OR Apache-2.0\n\
         taken:   noise/white.wav, pink.wav (Voss-McCartney), brown.wav, hum50.wav, hum60.wav \
         ({NOISE_SECONDS} s each, seed {NOISE_SEED:#x})\n\n\
         silence: no files; the trainer makes silence clips from noise/."
    );
    s
}

/// A WAV file's format and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WavInfo {
    format: u16,
    channels: u16,
    rate: u32,
    bits: u16,
    frames: u64,
}

/// Reads a WAV file's header (the chunks before the samples) only.
fn wav_info(path: &Path) -> Result<WavInfo> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let len = f.metadata()?.len();
    let mut head = Vec::new();
    f.by_ref().take(4096).read_to_end(&mut head)?;
    parse_wav_header(&head, len).with_context(|| format!("reading {}", path.display()))
}

/// The format and length from the first bytes of a WAV file of `len` bytes.
fn parse_wav_header(head: &[u8], len: u64) -> Result<WavInfo> {
    let u16_at = |o: usize| head.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        head.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    ensure!(
        head.get(0..4) == Some(b"RIFF") && head.get(8..12) == Some(b"WAVE"),
        "not a RIFF/WAVE file"
    );
    let mut fmt = None;
    let mut at = 12;
    while let (Some(id), Some(size)) = (head.get(at..at + 4), u32_at(at + 4)) {
        let body = at + 8;
        if id == b"fmt " {
            let field = |o| u16_at(body + o).context("fmt chunk truncated");
            fmt = Some((
                field(0)?,
                field(2)?,
                u32_at(body + 4).context("fmt chunk truncated")?,
                field(14)?,
            ));
        } else if id == b"data" {
            let (format, channels, rate, bits) = fmt.context("data chunk before fmt chunk")?;
            ensure!(
                body as u64 + size as u64 <= len,
                "data chunk runs past the end of the file"
            );
            let frame_bytes = u64::from(channels) * u64::from(bits / 8);
            ensure!(frame_bytes > 0, "zero-sized frames");
            return Ok(WavInfo {
                format,
                channels,
                rate,
                bits,
                frames: size as u64 / frame_bytes,
            });
        }
        at = body + size as usize + (size as usize & 1);
    }
    bail!("no data chunk in the first {} bytes", head.len())
}

/// Writes 16 kHz mono signed 16-bit PCM.
fn write_wav(path: &Path, samples: &[i16]) -> Result<()> {
    let data_bytes = u32::try_from(samples.len() * 2).context("WAV too long")?;
    let mut b = Vec::with_capacity(44 + samples.len() * 2);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_bytes).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // PCM
    b.extend_from_slice(&1u16.to_le_bytes()); // mono
    b.extend_from_slice(&RATE.to_le_bytes());
    b.extend_from_slice(&(RATE * 2).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_bytes.to_le_bytes());
    for s in samples {
        b.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, b).with_context(|| format!("writing {}", path.display()))
}

/// `NOISE_SECONDS` of `noise`, scaled to an RMS of -20 dBFS (hum: a peak of
/// -10 dBFS), seeded.
fn synth_noise(noise: Noise) -> Vec<i16> {
    let n = (RATE * NOISE_SECONDS) as usize;
    let seed = NOISE_SEED
        ^ match noise {
            Noise::White => 1,
            Noise::Pink => 2,
            Noise::Brown => 3,
            Noise::Hum(f) => 0x100 + u64::from(f),
        };
    let mut rng = SplitMix64::new(seed);
    let mut x: Vec<f64> = match noise {
        Noise::White => (0..n).map(|_| rng.signed_unit()).collect(),
        Noise::Pink => {
            // Voss-McCartney: row k is redrawn every 2^k samples; their sum
            // falls at 3 dB per octave.
            let mut rows = [0.0f64; 16];
            for r in rows.iter_mut() {
                *r = rng.signed_unit();
            }
            (0..n)
                .map(|i| {
                    let k = (i.max(1).trailing_zeros() as usize).min(rows.len() - 1);
                    rows[k] = rng.signed_unit();
                    rows.iter().sum::<f64>() + rng.signed_unit()
                })
                .collect()
        }
        Noise::Brown => {
            // Leaky integration of white noise: 6 dB per octave down to ~13 Hz.
            let mut y = 0.0;
            (0..n)
                .map(|_| {
                    y = 0.995 * y + rng.signed_unit();
                    y
                })
                .collect()
        }
        Noise::Hum(f0) => {
            // Mains hum: the fundamental and harmonics with random phases,
            // odd harmonics stronger (a transformer's magnetostriction).
            let amps = [1.0, 0.5, 0.4, 0.15, 0.25, 0.08, 0.12, 0.05];
            let phases: Vec<f64> = amps
                .iter()
                .map(|_| rng.signed_unit() * std::f64::consts::PI)
                .collect();
            (0..n)
                .map(|i| {
                    let t = i as f64 / f64::from(RATE);
                    amps.iter()
                        .zip(&phases)
                        .enumerate()
                        .map(|(h, (a, p))| {
                            let f = f64::from(f0) * (h + 1) as f64;
                            a * (2.0 * std::f64::consts::PI * f * t + p).sin()
                        })
                        .sum::<f64>()
                })
                .collect()
        }
    };
    let mean = x.iter().sum::<f64>() / n as f64;
    x.iter_mut().for_each(|v| *v -= mean);
    let gain = if let Noise::Hum(_) = noise {
        let peak = x.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        0.316 / peak.max(1e-12)
    } else {
        let rms = (x.iter().map(|v| v * v).sum::<f64>() / n as f64).sqrt();
        0.1 / rms.max(1e-12)
    };
    x.iter()
        .map(|v| (v * gain * 32767.0).round().clamp(-32768.0, 32767.0) as i16)
        .collect()
}

/// Checks the cache against the plan: the manifest is the plan's, and every
/// clip is there as 16 kHz mono 16-bit PCM. Returns each clip's seconds.
fn check(out: &Path, clips: &[Clip]) -> Result<Vec<f64>> {
    let manifest = out.join("manifest.tsv");
    let on_disk = std::fs::read_to_string(&manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    ensure!(
        on_disk == manifest_text(clips),
        "{} is not this recipe's (another version of xtask built it, or it was edited): \
         rerun with --force",
        manifest.display()
    );
    ensure!(
        out.join("SOURCES.txt").exists(),
        "{} has no SOURCES.txt: rerun with --force",
        out.display()
    );
    clips
        .iter()
        .map(|c| {
            let p = out.join(&c.path);
            let w = wav_info(&p).with_context(|| format!("{}: rerun with --force", c.path))?;
            ensure!(
                (w.format, w.channels, w.rate, w.bits) == (1, 1, RATE, 16) && w.frames > 0,
                "{} is not 16 kHz mono 16-bit PCM with samples ({w:?}): rerun with --force",
                p.display()
            );
            Ok(w.frames as f64 / f64::from(RATE))
        })
        .collect()
}

/// The table of clips per split and label, their seconds, and the noise.
fn summary(clips: &[Clip], seconds: &[f64]) -> String {
    let splits = ["train", "val", "test"];
    let count = |split: &str, label: &str| {
        clips
            .iter()
            .filter(|c| c.split == split && c.label == label)
            .count()
    };
    let mut s = format!("{:<10}{:>8}{:>8}{:>8}\n", "label", "train", "val", "test");
    for label in CLASSES {
        let _ = write!(s, "{label:<10}");
        for split in splits {
            let _ = write!(s, "{:>8}", count(split, label));
        }
        if label == "silence" {
            s.push_str("   (made by the trainer from noise/)");
        }
        s.push('\n');
    }
    let total = |split: &str| {
        clips
            .iter()
            .zip(seconds)
            .filter(|(c, _)| c.split == split)
            .fold((0, 0.0), |(n, t), (_, sec)| (n + 1, t + sec))
    };
    let _ = write!(s, "{:<10}", "clips");
    for split in splits {
        let _ = write!(s, "{:>8}", total(split).0);
    }
    let _ = write!(s, "\n{:<10}", "seconds");
    for split in splits {
        let _ = write!(s, "{:>8.0}", total(split).1);
    }
    let speech = count("noise", "speech");
    let (noise_clips, noise_seconds) = total("noise");
    let _ = writeln!(
        s,
        "\nnoise/    {} files, noise/speech/ {speech} files, {noise_seconds:.0} s",
        noise_clips - speech
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_the_reference_sequence() {
        // splitmix64 seeded with 0 (Vigna's reference C code).
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(r.next_u64(), 0x6e78_9e6a_a1b9_65f4);
    }

    #[test]
    fn validation_voices_are_never_heard_in_training() {
        assert!(TRAIN_BASES.iter().all(|b| !VAL_BASES.contains(b)));
        assert!(TRAIN_VARIANTS.iter().all(|v| !VAL_VARIANTS.contains(v)));
        let clips = plan();
        let voices = |split: &str| -> std::collections::BTreeSet<String> {
            clips
                .iter()
                .filter(|c| c.split == split)
                .map(|c| c.voice.clone())
                .collect()
        };
        let (train, val) = (voices("train"), voices("val"));
        assert!(train.is_disjoint(&val));
        for v in &val {
            let (base, variant) = v.split_once('+').unwrap_or((v, ""));
            assert!(
                VAL_BASES.contains(&base) && VAL_VARIANTS.contains(&variant),
                "{v}"
            );
        }
        // The draws reach most combinations, not a few.
        assert!(train.len() > 300, "{}", train.len());
        assert!(val.len() > 30, "{}", val.len());
    }

    #[test]
    fn the_plan_is_deterministic_and_the_manifest_well_formed() {
        let clips = plan();
        assert_eq!(clips, plan());
        let text = manifest_text(&clips);
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(MANIFEST_HEADER));
        let mut paths = std::collections::BTreeSet::new();
        for line in lines {
            let f: Vec<&str> = line.split('\t').collect();
            assert_eq!(f.len(), 7, "{line}");
            let (split, label, path) = (f[0], f[1], f[2]);
            assert!(f.iter().all(|x| !x.is_empty() && !x.contains('\n')));
            assert!(paths.insert(path.to_string()), "duplicate {path}");
            assert!(path.ends_with(".wav"));
            if split == "noise" {
                assert!(path.starts_with("noise/"));
            } else {
                assert!(CLASSES.contains(&label) && label != "silence", "{line}");
                assert!(path.starts_with(&format!("{split}/{label}/")), "{line}");
            }
        }
        let count = |split: &str, label: &str| {
            clips
                .iter()
                .filter(|c| c.split == split && c.label == label)
                .count()
        };
        assert_eq!(count("train", "seven"), TRAIN_PER_DIGIT);
        assert_eq!(count("val", "unknown"), VAL_UNKNOWN);
        assert_eq!(count("test", "zero"), 2);
        assert_eq!(count("test", "unknown"), TEST_UNKNOWN.len());
        assert!(text.contains(
            "test\tzero\ttest/zero/oh.wav\tasterisk-core-sounds-en-wav:\
             usr/share/asterisk/sounds/en_US_f_Allison/digits/oh.wav\ten_US_f_Allison\t-\t-\n"
        ));
    }

    #[test]
    fn no_unknown_word_is_a_digit_or_sounds_like_one() {
        let digits_and_homophones = [
            "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "oh",
            "o", "won", "to", "too", "for", "fore", "ate",
        ];
        for w in UNKNOWN_WORDS {
            assert!(!digits_and_homophones.contains(&w), "{w}");
        }
        let unique: std::collections::BTreeSet<_> = UNKNOWN_WORDS.iter().collect();
        assert_eq!(unique.len(), UNKNOWN_WORDS.len());
    }

    #[test]
    fn written_noise_reads_back_as_16_khz_mono_pcm() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("mote-kws-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let p = dir.join("pink.wav");
        let pink = synth_noise(Noise::Pink);
        write_wav(&p, &pink)?;
        let w = wav_info(&p)?;
        std::fs::remove_dir_all(&dir)?;
        assert_eq!(
            w,
            WavInfo {
                format: 1,
                channels: 1,
                rate: RATE,
                bits: 16,
                frames: pink.len() as u64
            }
        );
        assert_eq!(pink, synth_noise(Noise::Pink));
        assert_ne!(pink, synth_noise(Noise::White));
        Ok(())
    }
}
