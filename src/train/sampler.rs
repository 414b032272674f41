//! The order training batches come in: shuffled (the Trainer's `RandomSampler`, in
//! [`super::engine`]) or grouped by length.

use rand::seq::SliceRandom;

/// Length-grouped training order, seeded. As transformers' `LengthGroupedSampler`, the
/// shuffled order is cut into mega-batches of `min(n / (4 · batch), 50)` batches (so at least
/// four on a small set, which keeps batches from being the same every epoch), each sorted by
/// length and cut into batches, and the batch holding the longest example goes first (an
/// out-of-memory error shows at once). Unlike it, the batches of each mega-batch then come
/// in shuffled order rather than longest to shortest, so that the length of the reviews does
/// not follow the step in a saw-tooth of 50 steps (over three seeds this moved full
/// fine-tuning's accuracy within the noise: README, *Accuracy*). A short last batch stays
/// last.
pub fn group_by_length(
    order: &mut [usize],
    length: impl Fn(usize) -> usize,
    batch_size: usize,
    rng: &mut impl rand::Rng,
) {
    let batch_size = batch_size.max(1);
    let batches_per_mega_batch = (order.len() / (4 * batch_size)).clamp(1, 50);
    for mega_batch in order.chunks_mut(batches_per_mega_batch * batch_size) {
        mega_batch.sort_by_key(|&i| std::cmp::Reverse(length(i)));
        let whole = mega_batch.len() / batch_size * batch_size;
        let mut batches: Vec<Vec<usize>> = mega_batch[..whole].chunks(batch_size).map(<[usize]>::to_vec).collect();
        batches.shuffle(rng);
        for (slot, batch) in mega_batch[..whole].chunks_mut(batch_size).zip(batches) {
            slot.copy_from_slice(&batch);
        }
    }
    let whole = order.len() / batch_size * batch_size;
    let longest = (0..whole).max_by_key(|&p| (length(order[p]), std::cmp::Reverse(p)));
    if let Some(position) = longest.filter(|&p| p >= batch_size) {
        let (first, rest) = order.split_at_mut(batch_size);
        let start = position / batch_size * batch_size - batch_size;
        first.swap_with_slice(&mut rest[start..start + batch_size]);
    }
}

#[cfg(test)]
mod tests {
    use super::group_by_length;
    use rand::SeedableRng;

    fn grouped(lengths: &[usize], batch_size: usize, seed: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..lengths.len()).rev().collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        group_by_length(&mut order, |i| lengths[i], batch_size, &mut rng);
        order
    }

    fn padded_tokens(order: &[usize], lengths: &[usize], batch_size: usize) -> usize {
        order
            .chunks(batch_size)
            .map(|batch| batch.len() * batch.iter().map(|&i| lengths[i]).max().unwrap())
            .sum()
    }

    #[test]
    fn length_grouping_pads_little_keeps_every_example_and_shuffles_the_batches() {
        // 2,003 examples, batch 8: mega-batches of 50 batches, a short last batch of 3.
        let lengths: Vec<usize> = (0..2003).map(|i| 1 + (i * 7919) % 509).collect();
        let order = grouped(&lengths, 8, 42);
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, (0..2003).collect::<Vec<_>>(), "every example exactly once");
        let input: Vec<usize> = (0..2003).rev().collect();
        let (before, after) = (padded_tokens(&input, &lengths, 8), padded_tokens(&order, &lengths, 8));
        assert!(after * 100 < before * 55, "padded tokens {before} -> {after}");
        let longest = *lengths.iter().max().unwrap();
        assert!(
            order[..8].iter().any(|&i| lengths[i] == longest),
            "the longest batch first"
        );
        let mut last = order[2000..].to_vec();
        last.sort();
        assert_eq!(last, [0, 1, 2], "the short last batch stays last");
        // Within a mega-batch the batches are not in length order: no long-to-short sweep.
        let maxima: Vec<usize> = order[400..800]
            .chunks(8)
            .map(|b| b.iter().map(|&i| lengths[i]).max().unwrap())
            .collect();
        assert!(!maxima.windows(2).all(|w| w[0] >= w[1]), "{maxima:?}");
        assert_eq!(order, grouped(&lengths, 8, 42), "seeded");
        assert_ne!(order, grouped(&lengths, 8, 7));
    }

    #[test]
    fn length_grouping_keeps_four_mega_batches_on_small_sets() {
        // 32 examples in batches of 8: mega-batches of one batch, as the Trainer's sampler has,
        // so each batch holds the examples it held before, in the same place unless it is
        // swapped with the first batch for holding the longest example.
        let lengths: Vec<usize> = (0..32).map(|i| 1 + (i * 13) % 29).collect();
        let input: Vec<usize> = (0..32).rev().collect();
        let order = grouped(&lengths, 8, 42);
        let set = |batch: &[usize]| {
            let mut b = batch.to_vec();
            b.sort();
            b
        };
        let moved = (0..4)
            .filter(|&b| set(&order[b * 8..b * 8 + 8]) != set(&input[b * 8..b * 8 + 8]))
            .count();
        assert!(moved == 0 || moved == 2, "{moved} batches changed");
        for batch in order.chunks(8) {
            assert!(batch.windows(2).all(|w| lengths[w[0]] >= lengths[w[1]]));
        }
    }
}
