//! A bounded fuzzing run on stable Rust, for CI: each target of `airlock::fuzz` gets its
//! corpus (`host/fuzz/corpus/<target>`) replayed, then random mutations of it (byte flips,
//! inserts, deletes, copies, splices and dictionary tokens) for `AIRLOCK_FUZZ_SECS` seconds
//! (default 8). A panic fails the test with the input saved under the target dir and the
//! seed that reproduces the run (`AIRLOCK_FUZZ_SEED`); so does an input slower than 5 s.
//! Coverage-guided runs of the same targets: `make fuzz` (cargo-fuzz, libFuzzer).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Tokens the mutator inserts: the syntax of the targets' inputs.
const DICTIONARY: &[&[u8]] = &[
    b"{{",
    b"}}",
    b"{{-",
    b"-}}",
    b"{{ .",
    b"range",
    b"end",
    b"if",
    b"else",
    b"with",
    b"template",
    b"define",
    b"|",
    b"(",
    b")",
    b"$",
    b":=",
    b"\"",
    b"`",
    b"\n",
    b"\0",
    b": ",
    b"- ",
    b"{",
    b"}",
    b"[",
    b"]",
    b"apiVersion: external-secrets.io/v1\n",
    b"kind: ExternalSecret\n",
    b"kind: SecretStore\n",
    b"kind: Provider\n",
    b"spec:\n",
    b"*.",
    b"https://",
    b"http://",
    b":*",
    b":443",
    b"0.0.0.0/0",
    b"::/0",
    b"127.0.0.1",
    b"[::1]",
    b"%",
    b"\\",
    b"\xff",
    b"9999999999999999999",
];

/// Largest input the mutator builds.
const MAX_INPUT: usize = 16 << 10;
/// Slowest an input may be (debug build).
const SLOW: Duration = Duration::from_secs(5);

/// xorshift64*: deterministic from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn mutate(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut input = corpus[rng.below(corpus.len())].clone();
    for _ in 0..=rng.below(8) {
        let len = input.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(len + 1);
                input.insert(i, rng.next() as u8);
            }
            2 if len > 0 => {
                let start = rng.below(len);
                let end = (start + 1 + rng.below(16)).min(len);
                input.drain(start..end);
            }
            3 if len > 0 => {
                let start = rng.below(len);
                let end = (start + 1 + rng.below(64)).min(len);
                let piece = input[start..end].to_vec();
                let at = rng.below(len + 1);
                input.splice(at..at, piece);
            }
            4 => {
                let other = &corpus[rng.below(corpus.len())];
                if !other.is_empty() {
                    let start = rng.below(other.len());
                    let end = (start + 1 + rng.below(256)).min(other.len());
                    let at = rng.below(len + 1);
                    input.splice(at..at, other[start..end].iter().copied());
                }
            }
            _ => {
                let token = DICTIONARY[rng.below(DICTIONARY.len())];
                let at = rng.below(len + 1);
                input.splice(at..at, token.iter().copied());
            }
        }
    }
    input.truncate(MAX_INPUT);
    input
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("fuzz/corpus/{target}"));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "the corpus of fuzz target {target} ({}): {e}",
                dir.display()
            )
        })
        .map(|e| e.expect("corpus entry").path())
        .collect();
    files.sort();
    let corpus: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(f).expect("read corpus file"))
        .collect();
    assert!(
        !corpus.is_empty(),
        "fuzz target {target} has an empty corpus"
    );
    corpus
}

/// Runs `input`; on a panic, saves it and fails naming the file and the seed.
fn run_one(target: &str, f: fn(&[u8]), input: &[u8], seed: u64) -> Duration {
    let started = Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(|| f(input)));
    let took = started.elapsed();
    let save = |why: &str| -> ! {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
        std::fs::create_dir_all(&dir).expect("failures dir");
        let path = dir.join(format!("{target}-{seed:016x}-{}", input.len()));
        std::fs::write(&path, input).expect("save the failing input");
        panic!(
            "fuzz target {target}: {why} on the input saved as {} (AIRLOCK_FUZZ_SEED={seed})",
            path.display()
        );
    };
    if let Err(panic) = outcome {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        save(&format!("panicked ({message})"));
    }
    if took > SLOW {
        save(&format!("took {took:?}"));
    }
    took
}

#[test]
fn every_fuzz_target_survives_its_corpus_and_random_mutations() {
    let budget = Duration::from_secs(
        std::env::var("AIRLOCK_FUZZ_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(8),
    );
    let seed = std::env::var("AIRLOCK_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    println!("fuzz: seed {seed} (AIRLOCK_FUZZ_SEED), {budget:?} per target");
    println!("| target | corpus | inputs run | time | slowest input |");
    println!("|---|---|---|---|---|");
    for (target, f) in airlock::fuzz::TARGETS {
        let corpus = corpus(target);
        // One untimed call first: the template target's first Tera render compiles Tera's
        // sandbox component (1.5 s in a debug build, more on a loaded machine), a one-time
        // cost that is not the input's. Timing it flagged a 56-byte seed as slow.
        let _ = catch_unwind(AssertUnwindSafe(|| f(&corpus[0])));
        let started = Instant::now();
        let mut slowest = Duration::ZERO;
        for input in &corpus {
            slowest = slowest.max(run_one(target, *f, input, seed));
        }
        let mut rng = Rng(seed ^ target.len() as u64);
        let mut runs = corpus.len();
        while started.elapsed() < budget {
            let input = mutate(&mut rng, &corpus);
            slowest = slowest.max(run_one(target, *f, &input, seed));
            runs += 1;
        }
        println!(
            "| {target} | {} | {runs} | {:.1} s | {:.1} ms |",
            corpus.len(),
            started.elapsed().as_secs_f64(),
            slowest.as_secs_f64() * 1e3
        );
        assert!(runs > corpus.len(), "{target}: no mutated input ran");
    }
}

/// The mutator changes its inputs and stays within bounds, so the run above explores.
#[test]
fn the_mutator_explores_and_stays_bounded() {
    let corpus = vec![b"{{ .password }}".to_vec(), vec![b'x'; MAX_INPUT]];
    let mut rng = Rng(7);
    let mut distinct = std::collections::HashSet::new();
    for _ in 0..500 {
        let input = mutate(&mut rng, &corpus);
        assert!(input.len() <= MAX_INPUT);
        distinct.insert(input);
    }
    assert!(
        distinct.len() > 400,
        "{} distinct inputs of 500",
        distinct.len()
    );
}
