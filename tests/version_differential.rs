//! Differential tests: our version orderings against the real tools, over generated corpora.
//!
//! - Debian: `dpkg --compare-versions` (10,000 pairs, one shell process per chunk) and apt's
//!   `apt_pkg.version_compare` from python3-apt (50,000 pairs).
//! - RPM: `rpm.labelCompare` from python3-rpm on (epoch, version, release) triples, and
//!   librpm's `rpmvercmp` itself (librpmio from the rpm package, through ctypes) on raw strings
//!   (20,000 pairs each).
//!
//! Debian packages: dpkg (always present), python3-apt, rpm, python3-rpm. When a tool is missing
//! the test prints why and passes, except under `CI=true`, where a missing tool is a failure.
//! apk has no oracle on Debian; its ordering is covered by the unit tests in
//! `src/baseline/version/apk.rs`.

use std::cmp::Ordering;
use std::io::Write as _;
use std::process::{Command, Stdio};

use nodepatch::baseline::version::{deb, rpm};

/// Deterministic generator (splitmix64): the corpora are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick(&mut self, alphabet: &[u8]) -> char {
        alphabet[self.below(alphabet.len())] as char
    }
    fn string(&mut self, alphabet: &[u8], min: usize, max: usize) -> String {
        let len = min + self.below(max - min + 1);
        (0..len).map(|_| self.pick(alphabet)).collect()
    }
}

/// Alphabets weighted towards the characters that matter to the algorithms.
const DIGITS: &[u8] = b"0123456789000111";
const DEB_UPSTREAM: &[u8] = b"0123456789012345.....~~~+++aAbzZ";
const DEB_REVISION: &[u8] = b"0123456789012.....~~++abuUdeb";
const RPM_PART: &[u8] = b"0123456789012345.....~~^^__+aAbzZel";
const RPM_RAW: &[u8] = b"0123456789012345...--~~^^__+aAbzZ/:;el \t";

fn deb_version(rng: &mut Rng) -> String {
    let epoch = rng.chance(25).then(|| rng.string(DIGITS, 1, 2));
    let revision = rng.chance(70).then(|| {
        let mut r = rng.string(DEB_REVISION, 1, 8);
        // dpkg warns (and apt differs) on revisions not starting with a digit; keep them valid.
        if !r.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            r.insert(0, '1');
        }
        r
    });
    let mut upstream = rng.pick(b"0123456789").to_string();
    upstream.push_str(&rng.string(DEB_UPSTREAM, 0, 9));
    if revision.is_some() && rng.chance(10) {
        upstream.push('-');
        upstream.push_str(&rng.string(b"0123abc", 1, 3));
    }
    if epoch.is_some() && rng.chance(10) {
        upstream.push(':');
        upstream.push_str(&rng.string(b"0123", 1, 2));
    }
    let mut v = String::new();
    if let Some(e) = epoch {
        v.push_str(&e);
        v.push(':');
    }
    v.push_str(&upstream);
    if let Some(r) = revision {
        v.push('-');
        v.push_str(&r);
    }
    v
}

/// A second version near the first (so that most pairs share prefixes) or an unrelated one.
fn mutate(rng: &mut Rng, base: &str, alphabet: &[u8]) -> String {
    let mut chars: Vec<char> = base.chars().collect();
    for _ in 0..1 + rng.below(2) {
        let at = rng.below(chars.len() + 1);
        match rng.below(4) {
            0 if at < chars.len() => chars[at] = rng.pick(alphabet),
            1 if at < chars.len() => {
                chars.remove(at);
            }
            _ => chars.insert(at, rng.pick(alphabet)),
        }
    }
    chars.into_iter().collect()
}

fn deb_pairs(n: usize, seed: u64) -> Vec<(String, String)> {
    let mut rng = Rng(seed);
    let mut pairs = Vec::with_capacity(n);
    while pairs.len() < n {
        let a = deb_version(&mut rng);
        let b = match rng.below(3) {
            0 => deb_version(&mut rng),
            1 => a.clone(),
            _ => mutate(&mut rng, &a, DEB_UPSTREAM),
        };
        // Both sides must be versions dpkg accepts, or the tools only print errors.
        if deb::DebVersion::parse(&a).is_ok() && deb::DebVersion::parse(&b).is_ok() {
            pairs.push((a, b));
        }
    }
    pairs
}

fn rpm_part(rng: &mut Rng) -> String {
    let mut s = rng.string(RPM_PART, 1, 10);
    if rng.chance(50) {
        s.insert(0, rng.pick(b"0123456789"));
    }
    s
}

fn rpm_evr_triples(n: usize, seed: u64) -> Vec<([String; 3], [String; 3])> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|_| {
            let a = [
                rng.string(DIGITS, 1, 2),
                rpm_part(&mut rng),
                rpm_part(&mut rng),
            ];
            let b = match rng.below(3) {
                0 => [
                    rng.string(DIGITS, 1, 2),
                    rpm_part(&mut rng),
                    rpm_part(&mut rng),
                ],
                1 => a.clone(),
                _ => {
                    let mut b = a.clone();
                    let k = rng.below(3);
                    b[k] = mutate(&mut rng, &b[k], if k == 0 { DIGITS } else { RPM_PART });
                    if b[k].is_empty() || (k == 0 && !b[0].bytes().all(|c| c.is_ascii_digit())) {
                        b[k] = a[k].clone();
                    }
                    // The version may not contain '-' (it would move the release boundary).
                    b
                }
            };
            (a, b)
        })
        .collect()
}

fn rpm_raw_pairs(n: usize, seed: u64) -> Vec<(String, String)> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|_| {
            let a = rng.string(RPM_RAW, 0, 12);
            let b = if rng.chance(50) {
                mutate(&mut rng, &a, RPM_RAW)
            } else {
                rng.string(RPM_RAW, 0, 12)
            };
            (a, b)
        })
        .collect()
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Fail under CI=true, otherwise print why the test is skipped.
fn tool_missing(reason: &str) {
    assert!(
        !in_ci(),
        "CI=true and {reason}: install the Debian packages dpkg python3-apt rpm python3-rpm (make deps)"
    );
    eprintln!("skipping: {reason}");
}

/// A python3 that can import `module` (Debian's python3-apt and python3-rpm live in
/// /usr/bin/python3's path, which may differ from the first python3 on PATH).
fn python_with(module: &str) -> Option<&'static str> {
    ["/usr/bin/python3", "python3"].into_iter().find(|py| {
        Command::new(py)
            .args(["-c", &format!("import {module}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Run `script` with the tab-separated `lines` on stdin; return one output line per input line.
fn run_python(python: &str, script: &str, lines: &str) -> Vec<i32> {
    let mut child = Command::new(python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start python3");
    let mut stdin = child.stdin.take().expect("python stdin");
    let input = lines.to_owned();
    let writer = std::thread::spawn(move || {
        stdin
            .write_all(input.as_bytes())
            .expect("write pairs to python")
    });
    let out = child.wait_with_output().expect("python3 runs");
    writer.join().expect("writer thread");
    assert!(out.status.success(), "python oracle failed");
    String::from_utf8(out.stdout)
        .expect("utf-8 output")
        .lines()
        .map(|l| {
            l.trim()
                .parse::<i32>()
                .unwrap_or_else(|e| panic!("oracle printed {l:?}: {e}"))
        })
        .collect()
}

fn ordering(sign: i32) -> Ordering {
    sign.cmp(&0)
}

#[track_caller]
fn assert_all_agree<P: std::fmt::Debug>(
    what: &str,
    pairs: &[P],
    ours: impl Fn(&P) -> Ordering,
    theirs: &[i32],
) {
    assert_eq!(
        theirs.len(),
        pairs.len(),
        "{what}: oracle answered {} of {} pairs",
        theirs.len(),
        pairs.len()
    );
    let mismatches: Vec<String> = pairs
        .iter()
        .zip(theirs)
        .filter(|(p, t)| ours(p) != ordering(**t))
        .take(20)
        .map(|(p, t)| format!("{p:?}: ours {:?}, {what} {:?}", ours(p), ordering(*t)))
        .collect();
    assert!(
        mismatches.is_empty(),
        "{what} disagrees on:\n{}",
        mismatches.join("\n")
    );
    let distinct = |o: Ordering| theirs.iter().filter(|&&t| ordering(t) == o).count();
    eprintln!(
        "{what}: {} pairs agree ({} less, {} equal, {} greater)",
        pairs.len(),
        distinct(Ordering::Less),
        distinct(Ordering::Equal),
        distinct(Ordering::Greater)
    );
}

#[test]
fn deb_order_matches_dpkg_compare_versions_on_10000_pairs() {
    let dpkg_ok = Command::new("dpkg")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !dpkg_ok {
        return tool_missing("dpkg is not installed");
    }
    let pairs = deb_pairs(10_000, 0xD9C6);
    // One bash process per chunk (two chunks run at once): dpkg answers one pair per exec.
    let script = r#"while IFS=$'\t' read -r a b; do
  dpkg --compare-versions "$a" lt "$b"; rc=$?
  if [ $rc -eq 0 ]; then echo -1; continue; elif [ $rc -ne 1 ]; then echo "error $a $b"; continue; fi
  dpkg --compare-versions "$a" eq "$b"; rc=$?
  if [ $rc -eq 0 ]; then echo 0; elif [ $rc -eq 1 ]; then echo 1; else echo "error $a $b"; fi
done"#;
    let chunks: Vec<&[(String, String)]> = pairs.chunks(pairs.len().div_ceil(2)).collect();
    let handles: Vec<_> = chunks
        .iter()
        .map(|chunk| {
            let input: String = chunk.iter().map(|(a, b)| format!("{a}\t{b}\n")).collect();
            std::thread::spawn(move || {
                let mut child = Command::new("bash")
                    .args(["-c", script])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .expect("start bash");
                let mut stdin = child.stdin.take().expect("bash stdin");
                let writer = std::thread::spawn(move || {
                    stdin.write_all(input.as_bytes()).expect("write pairs")
                });
                let out = child.wait_with_output().expect("bash runs");
                writer.join().expect("writer thread");
                String::from_utf8(out.stdout).expect("utf-8 output")
            })
        })
        .collect();
    let theirs: Vec<i32> = handles
        .into_iter()
        .flat_map(|h| {
            h.join()
                .expect("dpkg chunk")
                .lines()
                .map(|l| {
                    l.parse::<i32>()
                        .unwrap_or_else(|_| panic!("dpkg --compare-versions: {l}"))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    assert_all_agree(
        "dpkg --compare-versions",
        &pairs,
        |(a, b)| deb::compare(a, b),
        &theirs,
    );
}

#[test]
fn deb_order_matches_apt_pkg_version_compare_on_50000_pairs() {
    let Some(python) = python_with("apt_pkg") else {
        return tool_missing("python3-apt (apt_pkg) is not installed");
    };
    let pairs = deb_pairs(50_000, 0xA97);
    let input: String = pairs.iter().map(|(a, b)| format!("{a}\t{b}\n")).collect();
    let script = "import apt_pkg, sys\napt_pkg.init_system()\nout = []\nfor line in sys.stdin:\n    a, b = line.rstrip('\\n').split('\\t')\n    r = apt_pkg.version_compare(a, b)\n    out.append(str((r > 0) - (r < 0)))\nprint('\\n'.join(out))\n";
    let theirs = run_python(python, script, &input);
    assert_all_agree(
        "apt_pkg.version_compare",
        &pairs,
        |(a, b)| deb::compare(a, b),
        &theirs,
    );
}

#[test]
fn rpm_evr_order_matches_rpm_label_compare_on_20000_triples() {
    let Some(python) = python_with("rpm") else {
        return tool_missing("python3-rpm is not installed");
    };
    let triples = rpm_evr_triples(20_000, 0x4E7);
    let input: String = triples
        .iter()
        .map(|(a, b)| {
            format!(
                "{}\t{}\t{}\t{}\t{}\t{}\n",
                a[0], a[1], a[2], b[0], b[1], b[2]
            )
        })
        .collect();
    let script = "import rpm, sys\nout = []\nfor line in sys.stdin:\n    f = line.rstrip('\\n').split('\\t')\n    r = rpm.labelCompare((f[0], f[1], f[2]), (f[3], f[4], f[5]))\n    out.append(str((r > 0) - (r < 0)))\nprint('\\n'.join(out))\n";
    let theirs = run_python(python, script, &input);
    let evr = |t: &[String; 3]| format!("{}:{}-{}", t[0], t[1], t[2]);
    assert_all_agree(
        "rpm.labelCompare",
        &triples,
        |(a, b)| rpm::compare_evr(&evr(a), &evr(b)),
        &theirs,
    );
}

#[test]
fn rpmvercmp_matches_librpm_on_20000_raw_pairs() {
    // librpm's own rpmvercmp, called through ctypes: raw strings (separators, '-', ':', spaces)
    // that the Python bindings would refuse to build a version object from.
    let Some(python) = python_with("ctypes") else {
        return tool_missing("python3 is not installed");
    };
    let probe = "import ctypes.util, sys\nsys.exit(0 if ctypes.util.find_library('rpmio') else 1)";
    if !Command::new(python)
        .args(["-c", probe])
        .status()
        .is_ok_and(|s| s.success())
    {
        return tool_missing("librpmio (Debian package rpm) is not installed");
    }
    let pairs = rpm_raw_pairs(20_000, 0x5EC);
    let input: String = pairs.iter().map(|(a, b)| format!("{a}\x1f{b}\n")).collect();
    let script = "import ctypes, ctypes.util, sys\nlib = ctypes.CDLL(ctypes.util.find_library('rpmio'))\nf = lib.rpmvercmp\nf.argtypes = [ctypes.c_char_p, ctypes.c_char_p]\nf.restype = ctypes.c_int\nout = []\nfor line in sys.stdin:\n    a, b = line.rstrip('\\n').split('\\x1f')\n    r = f(a.encode(), b.encode())\n    out.append(str((r > 0) - (r < 0)))\nprint('\\n'.join(out))\n";
    let theirs = run_python(python, script, &input);
    assert_all_agree(
        "librpm rpmvercmp",
        &pairs,
        |(a, b)| rpm::rpmvercmp(a, b),
        &theirs,
    );
}
