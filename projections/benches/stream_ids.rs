//! The read models' parse of the id in a stream name
//! (`projections::model::stream_id`, a hand parse of the hyphenated form
//! with `Uuid::parse_str` behind it) against `Uuid::parse_str` alone, on
//! 1 M `account-<uuid>` names; the two take turns, five rounds each,
//! fastest reported.
//!
//! `cargo bench -p projections --bench stream_ids`

use std::time::{Duration, Instant};

use projections::model::stream_id;
use uuid::Uuid;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const N: usize = 1_000_000;
const ROUNDS: usize = 5;

fn library(stream: &str, prefix: &str) -> Option<Uuid> {
    let id = stream.strip_prefix(prefix)?.strip_prefix('-')?;
    Uuid::parse_str(id).ok()
}

fn sum(names: &[String], parse: fn(&str, &str) -> Option<Uuid>) -> u64 {
    names
        .iter()
        .map(|name| parse(name, "account").map_or(0, |id| id.as_u64_pair().0))
        .fold(0, u64::wrapping_add)
}

fn main() {
    let mut state = 7u64;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let names: Vec<String> = (0..N)
        .map(|_| {
            let id = uuid::Builder::from_random_bytes(
                (u128::from(next()) << 64 | u128::from(next())).to_le_bytes(),
            )
            .into_uuid();
            format!("account-{id}")
        })
        .collect();
    assert_eq!(sum(&names, stream_id), sum(&names, library));
    let (mut hand, mut parse_str) = (Duration::MAX, Duration::MAX);
    for _ in 0..ROUNDS {
        let started = Instant::now();
        std::hint::black_box(sum(&names, stream_id));
        hand = hand.min(started.elapsed());
        let started = Instant::now();
        std::hint::black_box(sum(&names, library));
        parse_str = parse_str.min(started.elapsed());
    }
    let ns = |d: Duration| d.as_secs_f64() * 1e9 / N as f64;
    println!(
        "id of `account-<uuid>`: stream_id {:.2} ns, Uuid::parse_str {:.2} ns (ratio {:.2})",
        ns(hand),
        ns(parse_str),
        ns(parse_str) / ns(hand)
    );
}
