use proptest::prelude::*;

use super::*;

/// The naive reference: one bool per bit, searched bit by bit, as the pages say.
#[derive(Clone, Debug)]
struct Naive(Vec<bool>);

impl Naive {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }

    fn run_at(&self, i: u64, count: u64, want: bool) -> bool {
        i + count <= self.size() && (i..i + count).all(|b| self.0[b as usize] == want)
    }

    fn find(&self, count: u32, hint: u32, want: bool) -> u32 {
        let size = self.size();
        let hint = if u64::from(hint) >= size { 0 } else { u64::from(hint) };
        if count == 0 {
            return hint as u32;
        }
        let count = u64::from(count);
        (hint..size).chain(0..hint).find(|&i| self.run_at(i, count, want)).map_or(NOT_FOUND, |i| i as u32)
    }
}

fn words_of(naive: &Naive) -> Vec<u32> {
    let mut words = vec![0u32; words_for(naive.size()) as usize];
    for (i, &b) in naive.0.iter().enumerate() {
        if b {
            words[i / 32] |= 1 << (i % 32);
        }
    }
    words
}

#[derive(Clone, Debug)]
enum Op {
    Write { start: u32, count: u32, set: bool },
    All { set: bool },
    Find { count: u32, hint: u32, set: bool, flip: bool },
    Test { start: u32, length: u32, set: bool },
}

fn op(size: u32) -> impl Strategy<Value = Op> {
    let index = 0..size + 8;
    prop_oneof![
        (index.clone(), 0..size + 1, any::<bool>()).prop_map(move |(start, count, set)| Op::Write {
            start,
            count: count.min(size.saturating_sub(start)),
            set
        }),
        any::<bool>().prop_map(|set| Op::All { set }),
        (0..12u32, index.clone(), any::<bool>(), any::<bool>()).prop_map(|(count, hint, set, flip)| Op::Find {
            count,
            hint,
            set,
            flip
        }),
        (index, 0..size + 2, any::<bool>()).prop_map(|(start, length, set)| Op::Test { start, length, set }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Every routine agrees with the naive model, operation after operation.
    #[test]
    fn bitmaps_agree_with_a_vector_of_bools(
        (size, ops) in (1u32..200).prop_flat_map(|size| (Just(size), proptest::collection::vec(op(size), 1..40)))
    ) {
        let mut naive = Naive(vec![false; size as usize]);
        let mut words = words_of(&naive);
        for op in ops {
            let mut map = BitMap::new(&mut words, size);
            match op {
                Op::Write { start, count, set } => {
                    map.write_range(u64::from(start), u64::from(count), Bit::of(set));
                    for i in u64::from(start)..u64::from(start) + u64::from(count) {
                        naive.0[i as usize] = set;
                    }
                }
                Op::All { set } => {
                    map.write_all(Bit::of(set));
                    naive.0.iter_mut().for_each(|b| *b = set);
                }
                Op::Find { count, hint, set, flip } => {
                    let expected = naive.find(count, hint, set);
                    let got = if flip { map.find_and_flip(count, hint, Bit::of(set)) } else { map.find(count, hint, Bit::of(set)) };
                    prop_assert_eq!(got, expected, "find {} {} from {}", count, set, hint);
                    if flip && got != NOT_FOUND {
                        for i in got..got + count {
                            naive.0[i as usize] = !set;
                        }
                    }
                }
                Op::Test { start, length, set } => {
                    let end = u64::from(start) + u64::from(length);
                    let expected = length > 0 && end <= naive.size() && naive.run_at(u64::from(start), u64::from(length), set);
                    prop_assert_eq!(map.all(start, length, Bit::of(set)), expected);
                }
            }
            let map = BitMap::new(&mut words, size);
            let set = naive.0.iter().filter(|&&b| b).count() as u32;
            prop_assert_eq!(map.count(Bit::Set), set);
            prop_assert_eq!(map.count(Bit::Clear), size - set);
            for (i, &b) in naive.0.iter().enumerate() {
                prop_assert_eq!(map.test(i as u64), b, "bit {}", i);
            }
        }
    }
}

#[test]
fn searches_wrap_from_the_hint_and_runs_may_straddle_it() {
    let mut words = [0u32; 2];
    let mut map = BitMap::new(&mut words, 64);
    map.write_range(0, 64, Bit::Set);
    map.write_range(10, 6, Bit::Clear);
    assert_eq!(map.find(4, 12, Bit::Clear), 12, "from the hint");
    assert_eq!(map.find(6, 12, Bit::Clear), 10, "wrapped: the run starts before the hint");
    assert_eq!(map.find(7, 0, Bit::Clear), NOT_FOUND);
    assert_eq!(map.find(3, 200, Bit::Clear), 10, "a hint past the end searches from 0");
    assert_eq!(map.find_and_flip(6, 0, Bit::Clear), 10);
    assert_eq!(map.count(Bit::Clear), 0);
    assert_eq!(map.find_and_flip(64, 5, Bit::Set), 0);
    assert_eq!(map.count(Bit::Set), 0);
    assert_eq!(map.find(65, 0, Bit::Clear), NOT_FOUND, "longer than the bitmap");
}

#[test]
fn set_all_fills_whole_words_and_counts_stop_at_the_size() {
    let mut words = [0u32; 2];
    let mut map = BitMap::new(&mut words, 40);
    map.write_all(Bit::Set);
    assert_eq!(map.count(Bit::Set), 40);
    assert_eq!(map.count(Bit::Clear), 0);
    assert_eq!(words, [u32::MAX, u32::MAX], "the last word is filled whole");
}

#[test]
fn a_short_buffer_is_never_indexed_past_its_end() {
    let mut words = [0u32; 1];
    let mut map = BitMap::new(&mut words, 1000);
    map.write_range(0, u64::MAX, Bit::Set);
    map.write_all(Bit::Set);
    assert_eq!(map.count(Bit::Set), 32);
    assert!(!map.test(999));
    assert_eq!(map.find(40, 999, Bit::Set), NOT_FOUND);
    assert!(!map.all(u32::MAX, u32::MAX, Bit::Set));
}

#[test]
fn a_window_touches_only_its_words() {
    let mut words = [0u32; 2];
    let mut map = BitMap::window(&mut words, 3, 1000);
    map.write_range(90, 40, Bit::Set);
    assert_eq!(words, [u32::MAX, 0x3], "bits 96..130 of words 3 and 4; 90..96 are outside the window");
    let map = BitMap::window(&mut words, 3, 1000);
    assert!(map.test(100) && map.test(129) && !map.test(130) && !map.test(95));
    assert!(map.all(96, 34, Bit::Set) && !map.all(95, 2, Bit::Set));
}
