//! Ubuntu's phased updates as apt decides them: a version with `Phased-Update-Percentage: P`
//! reaches a machine when apt's die for it shows at most `P`. apt (`upgrade.cc`
//! `PhasedUpgrader` in 2.5–2.6, `depcache.cc` `PhasingApplied` from 2.7) seeds libstdc++'s
//! `std::minstd_rand` with `std::seed_seq` over `"<source>-<source version>-<machine-id>"`
//! and draws `std::uniform_int_distribution<unsigned>(0, 100)`; this module reproduces those
//! three libstdc++ algorithms bit for bit, so the agent keeps back exactly what apt keeps back.

/// `std::seed_seq::generate` (libstdc++, [rand.util.seedseq]) over `input` into `out`.
fn seed_seq_generate(input: &[u32], out: &mut [u32]) {
    let n = out.len();
    if n == 0 {
        return;
    }
    out.fill(0x8b8b_8b8b);
    let s = input.len();
    let t = if n >= 623 {
        11
    } else if n >= 68 {
        7
    } else if n >= 39 {
        5
    } else if n >= 7 {
        3
    } else {
        (n - 1) / 2
    };
    let p = (n - t) / 2;
    let q = p + t;
    let m = (s + 1).max(n);
    let tf = |x: u32| x ^ (x >> 27);
    for k in 0..m {
        let arg = out[k % n] ^ out[(k + p) % n] ^ out[(k + n - 1) % n];
        let r1 = 1_664_525u32.wrapping_mul(tf(arg));
        let r2 = if k == 0 {
            r1.wrapping_add(s as u32)
        } else if k <= s {
            r1.wrapping_add((k % n) as u32).wrapping_add(input[k - 1])
        } else {
            r1.wrapping_add((k % n) as u32)
        };
        out[(k + p) % n] = out[(k + p) % n].wrapping_add(r1);
        out[(k + q) % n] = out[(k + q) % n].wrapping_add(r2);
        out[k % n] = r2;
    }
    for k in m..m + n {
        let arg = out[k % n]
            .wrapping_add(out[(k + p) % n])
            .wrapping_add(out[(k + n - 1) % n]);
        let r3 = 1_566_083_941u32.wrapping_mul(tf(arg));
        let r4 = r3.wrapping_sub((k % n) as u32);
        out[(k + p) % n] ^= r3;
        out[(k + q) % n] ^= r4;
        out[k % n] = r4;
    }
}

const MINSTD_M: u64 = 2_147_483_647;
const MINSTD_A: u64 = 48_271;

/// apt's die for `seed`: `uniform_int_distribution<unsigned>(0, 100)` over a `minstd_rand`
/// seeded with `seed_seq(seed.begin(), seed.end())`.
pub fn phase_roll(seed: &str) -> u32 {
    // seed_seq stores each `char` (signed on the platforms apt ships for) as uint_least32_t.
    let input: Vec<u32> = seed.bytes().map(|b| b as i8 as i32 as u32).collect();
    // linear_congruential_engine::seed(Sseq&): k = ceil(log2(m) / 32) = 1, generate k + 3 words,
    // the state is word 3 mod m (1 when that is 0).
    let mut words = [0u32; 4];
    seed_seq_generate(&input, &mut words);
    let mut state = u64::from(words[3]) % MINSTD_M;
    if state == 0 {
        state = 1;
    }
    // uniform_int_distribution's "two divisions" path: the engine's range (2^31 - 3) is neither
    // 2^32 - 1 nor 2^64 - 1.
    let urng_min = 1u64;
    let urng_range = (MINSTD_M - 1) - urng_min;
    let range = 101u64;
    let scaling = urng_range / range;
    let past = range * scaling;
    loop {
        state = state * MINSTD_A % MINSTD_M;
        let value = state - urng_min;
        if value < past {
            return (value / scaling) as u32;
        }
    }
}

/// True when apt's phasing (with no Always/Never option) leaves this machine out of a version
/// with `percentage`: its roll for `"<source>-<source version>-<machine-id>"` exceeds it.
pub fn excluded_by_roll(
    source: &str,
    source_version: &str,
    machine_id: &str,
    percentage: u32,
) -> bool {
    phase_roll(&format!("{source}-{source_version}-{machine_id}")) > percentage
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values printed by a C++ program compiled with g++ 12 (libstdc++) on this machine's Debian
    /// 12: `std::seed_seq s(str.begin(), str.end()); std::minstd_rand r(s);
    /// std::uniform_int_distribution<unsigned>(0, 100)(r)`.
    #[test]
    fn rolls_equal_libstdcxx() {
        for (seed, expected) in GOLDEN {
            assert_eq!(phase_roll(seed), *expected, "{seed}");
        }
    }

    const GOLDEN: &[(&str, u32)] = &[
        ("np-phased-1.0-2-3d1219c7c4c5404aaa1f6d2a48adfda4", 24),
        ("hello-2.10-3ubuntu1-0123456789abcdef0123456789abcdef", 22),
        ("a-1-", 4),
        ("", 63),
        ("kubelet-1.30.2-1.1-ffffffffffffffffffffffffffffffff", 48),
        (
            "systemd-255.4-1ubuntu8.4-d41d8cd98f00b204e9800998ecf8427e",
            83,
        ),
    ];
}
