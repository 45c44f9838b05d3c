//! qcow2 (version 3) from a raw image, written front to back.
//!
//! Hand-written rather than imago 0.2 (or `qemu-img convert`): knowing every
//! allocated cluster before writing lets the whole image be laid out up
//! front and streamed once, metadata first, with every field fixed; imago
//! allocates as a block device would, through its own (async) I/O layer.
//!
//! Layout, in 64 KiB clusters: the header (cluster 0), the L1 table, the
//! refcount table, the refcount blocks, the L2 tables (only those covering
//! data, in guest order), then the data clusters in guest order. Only
//! clusters with a non-zero byte are allocated; the rest read as zeros.
//! Every L1 and L2 entry carries the COPIED flag (refcount 1), refcounts
//! are 16-bit, and every used cluster, metadata included, has refcount 1.
//! No header extensions, no snapshots, no backing file.

use std::io::Write;

use super::DiskError;
use super::scan::{GRANULE, RawImage};
use super::sink::ZEROS;

const CLUSTER: u64 = GRANULE;
const CLUSTER_BITS: u32 = 16;
/// Entries per L2 table (8 bytes each).
const L2_ENTRIES: u64 = CLUSTER / 8;
/// Entries per refcount block (16-bit refcounts).
const REFCOUNTS_PER_BLOCK: u64 = CLUSTER / 2;
const COPIED: u64 = 1 << 63;
const HEADER_LENGTH: u32 = 104;

/// Where everything goes, in clusters.
#[derive(Debug, PartialEq, Eq)]
struct Plan {
    l1_entries: u64,
    l1_at: u64,
    l1_clusters: u64,
    rt_at: u64,
    rt_clusters: u64,
    rb_at: u64,
    rb_count: u64,
    l2_at: u64,
    /// L1 indices that have an L2 table, ascending.
    l2_tables: Vec<u64>,
    data_at: u64,
    total: u64,
}

fn plan(raw: &RawImage) -> Plan {
    let clusters = raw.len().div_ceil(CLUSTER);
    let l1_entries = clusters.div_ceil(L2_ENTRIES);
    let mut l2_tables: Vec<u64> = Vec::new();
    for &(a, b) in raw.runs() {
        for t in a / L2_ENTRIES..=(b - 1) / L2_ENTRIES {
            if l2_tables.last() != Some(&t) {
                l2_tables.push(t);
            }
        }
    }
    let data: u64 = raw.runs().iter().map(|&(a, b)| b - a).sum();
    let l1_clusters = (l1_entries * 8).div_ceil(CLUSTER).max(1);
    // The refcount blocks count themselves and the table: grow until stable.
    let (mut rb_count, mut rt_clusters) = (1, 1);
    loop {
        let total = 1 + l1_clusters + rt_clusters + rb_count + l2_tables.len() as u64 + data;
        let rb = total.div_ceil(REFCOUNTS_PER_BLOCK);
        let rt = (rb * 8).div_ceil(CLUSTER);
        if rb == rb_count && rt == rt_clusters {
            break;
        }
        rb_count = rb.max(rb_count);
        rt_clusters = rt.max(rt_clusters);
    }
    let l1_at = 1;
    let rt_at = l1_at + l1_clusters;
    let rb_at = rt_at + rt_clusters;
    let l2_at = rb_at + rb_count;
    let data_at = l2_at + l2_tables.len() as u64;
    Plan {
        l1_entries,
        l1_at,
        l1_clusters,
        rt_at,
        rt_clusters,
        rb_at,
        rb_count,
        l2_at,
        l2_tables,
        data_at,
        total: data_at + data,
    }
}

fn header(raw: &RawImage, p: &Plan) -> Vec<u8> {
    let mut h = vec![0u8; CLUSTER as usize];
    let put32 = |h: &mut [u8], at: usize, v: u32| h[at..at + 4].copy_from_slice(&v.to_be_bytes());
    let put64 = |h: &mut [u8], at: usize, v: u64| h[at..at + 8].copy_from_slice(&v.to_be_bytes());
    h[0..4].copy_from_slice(b"QFI\xfb");
    put32(&mut h, 4, 3);
    // 8: backing file offset, 16: its size: none.
    put32(&mut h, 20, CLUSTER_BITS);
    put64(&mut h, 24, raw.len());
    // 32: no encryption.
    put32(&mut h, 36, p.l1_entries as u32);
    put64(&mut h, 40, p.l1_at * CLUSTER);
    put64(&mut h, 48, p.rt_at * CLUSTER);
    put32(&mut h, 56, p.rt_clusters as u32);
    // 60: no snapshots; 72, 80, 88: no incompatible, compatible or autoclear features.
    put32(&mut h, 96, 4);
    put32(&mut h, 100, HEADER_LENGTH);
    // At 104, the end of header extensions: eight zero bytes.
    h
}

/// Writes `raw` as qcow2 to `out`; returns the bytes written.
pub fn write<W: Write>(raw: &RawImage, mut out: W) -> Result<u64, DiskError> {
    let p = plan(raw);
    if p.l1_entries > u64::from(u32::MAX) / 8 {
        return Err(DiskError::TooLarge {
            format: "qcow2",
            reason: format!("{} bytes is more than qcow2 addresses", raw.len()),
        });
    }
    let io = DiskError::io("writing qcow2");
    out.write_all(&header(raw, &p)).map_err(&io)?;

    // L1: each table's offset, in the order the tables are laid out.
    let mut l1 = vec![0u8; (p.l1_clusters * CLUSTER) as usize];
    for (k, &t) in p.l2_tables.iter().enumerate() {
        let at = (t * 8) as usize;
        let v = ((p.l2_at + k as u64) * CLUSTER) | COPIED;
        l1[at..at + 8].copy_from_slice(&v.to_be_bytes());
    }
    out.write_all(&l1).map_err(&io)?;
    drop(l1);

    let mut rt = vec![0u8; (p.rt_clusters * CLUSTER) as usize];
    for k in 0..p.rb_count {
        let at = (k * 8) as usize;
        rt[at..at + 8].copy_from_slice(&((p.rb_at + k) * CLUSTER).to_be_bytes());
    }
    out.write_all(&rt).map_err(&io)?;
    drop(rt);

    let mut block = vec![0u8; CLUSTER as usize];
    for k in 0..p.rb_count {
        block.fill(0);
        let first = k * REFCOUNTS_PER_BLOCK;
        let used = p.total.saturating_sub(first).min(REFCOUNTS_PER_BLOCK);
        for e in 0..used as usize {
            block[2 * e..2 * e + 2].copy_from_slice(&1u16.to_be_bytes());
        }
        out.write_all(&block).map_err(&io)?;
    }

    // L2 tables: the k-th data cluster, in guest order, is at data_at + k.
    let mut host = p.data_at;
    let mut granules = raw.granules().peekable();
    for &t in &p.l2_tables {
        block.fill(0);
        while let Some(&g) = granules.peek() {
            if g / L2_ENTRIES != t {
                break;
            }
            let at = ((g % L2_ENTRIES) * 8) as usize;
            block[at..at + 8].copy_from_slice(&((host * CLUSTER) | COPIED).to_be_bytes());
            host += 1;
            granules.next();
        }
        out.write_all(&block).map_err(&io)?;
    }

    raw.each_chunk(|_, data| {
        out.write_all(data)
            .map_err(DiskError::io("writing qcow2"))?;
        // Only the image's last granule can be short: pad it to a cluster.
        let rem = data.len() as u64 % CLUSTER;
        if rem != 0 {
            out.write_all(&ZEROS[..(CLUSTER - rem) as usize])
                .map_err(DiskError::io("writing qcow2"))?;
        }
        Ok(())
    })?;
    out.flush().map_err(&io)?;
    Ok(p.total * CLUSTER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    fn raw(len: u64, at: &[u64]) -> RawImage {
        let f = tempfile::tempfile().unwrap();
        f.set_len(len).unwrap();
        for &a in at {
            f.write_all_at(b"data", a).unwrap();
        }
        RawImage::from_file(f, "test").unwrap()
    }

    #[test]
    fn plans() {
        // 1 GiB, data in the first and last cluster: two L2 tables.
        let p = plan(&raw(1 << 30, &[0, (1 << 30) - 4]));
        assert_eq!(p.l1_entries, 2);
        assert_eq!(p.l2_tables, [0, 1]);
        assert_eq!(
            (p.l1_at, p.rt_at, p.rb_at, p.l2_at, p.data_at, p.total),
            (1, 2, 3, 4, 6, 8)
        );
        // Empty: header, L1, refcount table and block only.
        let p = plan(&raw(1 << 20, &[]));
        assert_eq!(p.total, 4);
        assert!(p.l2_tables.is_empty());
    }

    #[test]
    fn writes_what_it_plans() {
        let r = raw(3 << 20, &[100, 2 << 20]);
        let mut out = Vec::new();
        let n = write(&r, &mut out).unwrap();
        assert_eq!(out.len() as u64, n);
        assert_eq!(&out[..4], b"QFI\xfb");
        let p = plan(&r);
        let data = (p.data_at * CLUSTER) as usize;
        assert_eq!(&out[data + 100..data + 104], b"data");
        assert_eq!(&out[data + CLUSTER as usize..][..4], b"data");
    }
}
