//! Distances between latent points: the Euclidean distance, how far apart a point set's
//! points typically lie, and greedy k-centre (the core-set arm and round 0 of a project).

use rayon::prelude::*;

/// The median over points of the distance to their nearest other point (0 for fewer than
/// two points).
pub fn median_nearest_distance(points: &[Vec<f32>]) -> f32 {
    let mut nearest: Vec<f32> = (0..points.len())
        .into_par_iter()
        .map(|i| {
            points
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, p)| distance(p, &points[i]))
                .fold(f32::INFINITY, f32::min)
        })
        .filter(|d| d.is_finite())
        .collect();
    if nearest.is_empty() {
        return 0.0;
    }
    nearest.sort_by(f32::total_cmp);
    nearest[nearest.len() / 2]
}

/// Greedy k-centre: the free frame farthest from every annotated or already picked one.
pub fn k_centre(
    points: &[Vec<f32>],
    centres: &[usize],
    allowed: impl Fn(usize) -> bool,
    count: usize,
    first: usize,
) -> Vec<usize> {
    let mut nearest: Vec<f32> = points
        .iter()
        .map(|p| {
            centres
                .iter()
                .map(|&c| distance(p, &points[c]))
                .fold(f32::INFINITY, f32::min)
        })
        .collect();
    let mut picks = Vec::with_capacity(count);
    while picks.len() < count {
        let next = if centres.is_empty() && picks.is_empty() {
            Some(first)
        } else {
            (0..points.len())
                .filter(|&i| allowed(i) && !picks.contains(&i))
                .max_by(|&a, &b| nearest[a].total_cmp(&nearest[b]))
        };
        let Some(next) = next else { break };
        picks.push(next);
        for (i, p) in points.iter().enumerate() {
            nearest[i] = nearest[i].min(distance(p, &points[next]));
        }
    }
    picks
}

/// Euclidean distance of two latent points.
pub fn distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f32>()
        .sqrt()
}
