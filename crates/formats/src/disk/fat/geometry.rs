//! Volume geometry: how many reserved sectors, how large each FAT is and
//! how many clusters fit, for a FAT type, cluster size and volume size.
//!
//! The FAT type follows from the cluster count, as every reader decides it:
//! fewer than 4085 clusters is FAT12, fewer than 65525 FAT16, else FAT32.

use super::FatType;

/// Clusters each type can have.
pub fn cluster_range(ty: FatType) -> (u64, u64) {
    match ty {
        FatType::Fat12 => (1, 4084),
        FatType::Fat16 => (4085, 65524),
        FatType::Fat32 => (65525, 0x0fff_fff5),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub ty: FatType,
    /// Sectors per cluster.
    pub spc: u32,
    pub reserved: u32,
    /// Sectors per FAT (there are two).
    pub fat_sectors: u32,
    /// Sectors of the fixed root directory (FAT12/16; 0 on FAT32).
    pub root_sectors: u32,
    /// First sector of the data region: a multiple of `spc`, so every
    /// cluster is aligned to its size within the volume.
    pub data_start: u32,
    pub clusters: u32,
    pub total: u32,
}

fn fat_sectors_for(ty: FatType, clusters: u64) -> u64 {
    let entries = clusters + 2;
    let bytes = match ty {
        FatType::Fat12 => (entries * 3).div_ceil(2),
        FatType::Fat16 => entries * 2,
        FatType::Fat32 => entries * 4,
    };
    bytes.div_ceil(512)
}

/// Reserved sectors (the minimum, padded so the data region is aligned)
/// and the data region's first sector.
fn metadata(ty: FatType, spc: u64, fat_sectors: u64, root_sectors: u64) -> (u64, u64) {
    let min_reserved = if ty == FatType::Fat32 { 32 } else { 1 };
    let meta = min_reserved + 2 * fat_sectors + root_sectors;
    let data_start = meta.div_ceil(spc) * spc;
    (min_reserved + data_start - meta, data_start)
}

fn make(ty: FatType, spc: u64, fat: u64, root: u64, clusters: u64, total: u64) -> Option<Geometry> {
    let (reserved, data_start) = metadata(ty, spc, fat, root);
    let (lo, hi) = cluster_range(ty);
    if clusters < lo || clusters > hi || total > u64::from(u32::MAX) {
        return None;
    }
    Some(Geometry {
        ty,
        spc: spc as u32,
        reserved: reserved as u32,
        fat_sectors: fat as u32,
        root_sectors: root as u32,
        data_start: data_start as u32,
        clusters: clusters as u32,
        total: total as u32,
    })
}

/// The geometry of a volume of `total` sectors, if it makes a valid `ty`:
/// the smallest FAT that covers the clusters left beside it, so the most
/// clusters.
pub fn for_size(ty: FatType, spc: u32, root_sectors: u32, total: u64) -> Option<Geometry> {
    let (spc, root) = (u64::from(spc), u64::from(root_sectors));
    // `done(f)` is false up to the smallest workable FAT size and true from
    // there on (more FAT sectors leave fewer clusters, needing no more FAT),
    // so the first `f` where it holds is found by bisection.
    let done = |fat: u64| {
        let (_, data_start) = metadata(ty, spc, fat, root);
        data_start >= total || fat_sectors_for(ty, (total - data_start) / spc) <= fat
    };
    let (mut lo, mut hi) = (1u64, total.max(1));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if done(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let (_, data_start) = metadata(ty, spc, lo, root);
    if data_start >= total {
        return None;
    }
    make(ty, spc, lo, root, (total - data_start) / spc, total)
}

/// The smallest volume of type `ty` with at least `clusters` clusters.
pub fn smallest(ty: FatType, spc: u32, root_sectors: u32, clusters: u64) -> Option<Geometry> {
    let (spc64, root) = (u64::from(spc), u64::from(root_sectors));
    let clusters = clusters.max(cluster_range(ty).0);
    let fat = fat_sectors_for(ty, clusters);
    let (_, data_start) = metadata(ty, spc64, fat, root);
    make(
        ty,
        spc64,
        fat,
        root,
        clusters,
        data_start + clusters * spc64,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_trip_and_stay_aligned() {
        for ty in [FatType::Fat12, FatType::Fat16, FatType::Fat32] {
            let root = if ty == FatType::Fat32 { 0 } else { 32 };
            for spc in [1, 4, 8, 64] {
                let (lo, hi) = cluster_range(ty);
                for clusters in [lo, lo + 1, lo + 1000, lo + 1234, hi.min(lo + 100_000)] {
                    let g = smallest(ty, spc, root, clusters).unwrap();
                    assert_eq!(u64::from(g.clusters), clusters);
                    assert_eq!(g.data_start % spc, 0);
                    // Reading the same size back gives the same layout.
                    assert_eq!(for_size(ty, spc, root, u64::from(g.total)), Some(g));
                }
            }
        }
    }

    #[test]
    fn types_follow_cluster_counts() {
        // 16 MiB with 4 KiB clusters: about 4090 clusters, too many for FAT12.
        assert!(for_size(FatType::Fat12, 8, 32, 32768).is_none());
        assert!(for_size(FatType::Fat16, 8, 32, 32768).is_some());
        assert!(for_size(FatType::Fat32, 8, 0, 32768).is_none());
        let g = for_size(FatType::Fat32, 8, 0, 2 << 21).unwrap();
        assert!(g.reserved >= 32 && g.root_sectors == 0);
        assert!(u64::from(g.fat_sectors) * 512 / 4 >= u64::from(g.clusters) + 2);
    }
}
