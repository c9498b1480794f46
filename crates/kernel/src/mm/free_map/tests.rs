use proptest::prelude::*;

use super::*;

const SMALL: Geometry = Geometry { block_words_shift: 1, group_blocks_shift: 2 };

/// The naive reference: one bool per frame, searched frame by frame.
struct Naive(Vec<bool>);

impl Naive {
    fn find(&self, first: u64, last: u64, count: u64, boundary: u64, dir: Direction) -> Option<u64> {
        let last = last.min(self.0.len() as u64 - 1);
        if first > last || count == 0 || (boundary != 0 && count > boundary) {
            return None;
        }
        let fits = |x: u64| {
            x >= first
                && x + count - 1 <= last
                && (x..x + count).all(|f| self.0[f as usize])
                && (boundary == 0 || x / boundary == (x + count - 1) / boundary)
        };
        let mut candidates: Box<dyn Iterator<Item = u64>> = match dir {
            Direction::BottomUp => Box::new(first..=last),
            Direction::TopDown => Box::new((first..=last).rev()),
        };
        candidates.find(|&x| fits(x))
    }

    fn largest(&self, first: u64, last: u64) -> u64 {
        let (mut best, mut cur) = (0, 0);
        for f in first..=last.min(self.0.len() as u64 - 1) {
            cur = if self.0[f as usize] { cur + 1 } else { 0 };
            best = best.max(cur);
        }
        best
    }
}

#[derive(Debug, Clone)]
enum Op {
    Set { start: u64, count: u64, free: bool },
    Find { first: u64, last: u64, count: u64, boundary_shift: Option<u32>, top_down: bool },
}

fn op(frames: u64) -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..frames, 1..64u64, any::<bool>()).prop_map(move |(start, count, free)| Op::Set {
            start,
            count: count.min(frames - start),
            free
        }),
        (0..frames, 0..frames, 1..40u64, proptest::option::of(0..7u32), any::<bool>()).prop_map(
            |(a, b, count, boundary_shift, top_down)| Op::Find {
                first: a.min(b),
                last: a.max(b),
                count,
                boundary_shift,
                top_down
            }
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Every search over the summarised map answers exactly what a frame-by-frame
    /// scan answers, after any sequence of frees and allocations.
    #[test]
    fn searches_match_a_naive_scan(frames in 1u64..1500, ops in proptest::collection::vec(op(1500), 1..60)) {
        let mut map = FreeMap::new(frames, SMALL);
        let mut naive = Naive(vec![false; frames as usize]);
        for op in ops {
            match op {
                Op::Set { start, count, free } => {
                    let start = start % frames;
                    let count = count.min(frames - start).max(1);
                    map.set(start, count, free);
                    for f in start..start + count {
                        naive.0[f as usize] = free;
                    }
                }
                Op::Find { first, last, count, boundary_shift, top_down } => {
                    let dir = if top_down { Direction::TopDown } else { Direction::BottomUp };
                    let boundary = boundary_shift.map_or(0, |s| 1u64 << s);
                    prop_assert_eq!(
                        find_run(&map, first, last, count, boundary, dir),
                        naive.find(first, last, count, boundary, dir),
                        "find {} in [{}, {}] boundary {} {:?}", count, first, last, boundary, dir
                    );
                    prop_assert_eq!(map.largest_run(first, last), naive.largest(first, last));
                }
            }
            prop_assert_eq!(map.free(), naive.0.iter().filter(|&&f| f).count() as u64);
        }
        for f in 0..frames {
            prop_assert_eq!(map.is_free(f), naive.0[f as usize]);
        }
    }
}

#[test]
fn a_terabyte_map_costs_nothing_until_used() {
    let frames = (1u64 << 40) >> 12;
    let mut map = FreeMap::new(frames, Geometry::DEFAULT);
    map.set(0, frames, true);
    assert!(map.groups.iter().all(|g| g.mixed.is_none()));
    assert_eq!(map.free(), frames);
    assert_eq!(map.largest_run(0, frames - 1), frames);
    assert_eq!(find_one(&map, 0, frames - 1, Direction::TopDown), Some(frames - 1));
    map.set(frames - 1, 1, false);
    assert_eq!(map.groups.iter().filter(|g| g.mixed.is_some()).count(), 1);
}

#[test]
fn runs_never_cross_the_boundary() {
    let mut map = FreeMap::new(4096, SMALL);
    map.set(100, 3000, true);
    for boundary in [16u64, 64, 256, 1024] {
        for count in [1u64, 5, 16] {
            for dir in [Direction::BottomUp, Direction::TopDown] {
                let x = find_run(&map, 0, 4095, count, boundary, dir).expect("fits");
                assert_eq!(x / boundary, (x + count - 1) / boundary);
                assert!(map.is_range_free(x, count));
            }
        }
    }
    assert_eq!(find_run(&map, 0, 4095, 17, 16, Direction::TopDown), None);
}

#[test]
fn place_in_run_handles_edges() {
    assert_eq!(place_in_run(10, 20, 5, 0, Direction::BottomUp), Some(10));
    assert_eq!(place_in_run(10, 20, 5, 0, Direction::TopDown), Some(25));
    assert_eq!(place_in_run(14, 10, 4, 8, Direction::BottomUp), Some(16));
    assert_eq!(place_in_run(14, 10, 4, 8, Direction::TopDown), Some(20));
    assert_eq!(place_in_run(14, 5, 4, 8, Direction::TopDown), None);
    assert_eq!(place_in_run(16, 5, 4, 8, Direction::TopDown), Some(17));
    assert_eq!(place_in_run(0, 3, 4, 0, Direction::TopDown), None);
}
