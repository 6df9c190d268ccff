//! Cutting images into sequences (SPEC 2.4), numbered the way DeepFaune numbers them.
//!
//! DeepFaune (`fileManager.py`, `findSequences`) walks the folders in the order their first
//! image appears in the file list, and inside a folder sorts the images by date; a new sequence
//! starts when the gap to the previous image is more than `maxlag` seconds or when either date is
//! missing. Sequence numbers run 1..N over all folders in that order, so the numbering depends
//! only on folder order and dates, never on predictions.
//!
//! Two details of DeepFaune are reproduced as closely as the inputs allow:
//! - it sorts the date *strings*, and a missing date is the string `"NA"`, which sorts after every
//!   real date: undated images come last in their folder, each alone. (A present but unparsable
//!   date string sorts at its lexicographic place in DeepFaune; here every unparsable date is
//!   simply "no date", so such an image is numbered after the dated ones of its folder.)
//! - equal dates keep their input order (a stable sort). DeepFaune uses `np.argsort`, which is
//!   stable for folders of up to 16 images and may order exact ties differently beyond that; that
//!   only changes which tied image is listed first, never which sequence an image belongs to.

use std::path::Path;

use crate::error::Error;

/// Sequence number (1-based) of every image, in input order.
///
/// `paths` gives each image's folder (its parent directory); `dates` are seconds on any fixed clock
/// (EXIF [`crate::image_io::Timestamp::seconds`]), `None` when the image has no usable date.
/// Images whose dates differ by at most `maxlag_s` seconds stay in the same sequence (equal stays
/// in); undated images are always alone.
///
/// ```
/// use deepfaune_rs::sequence::group_sequences;
/// let paths = ["cam1/a.jpg", "cam1/b.jpg", "cam2/c.jpg", "cam1/d.jpg"];
/// let dates = [Some(100), Some(110), Some(100), Some(121)];
/// // cam1: a(100) b(110) in one sequence (gap 10 <= 10), d(121) new (gap 11); then cam2.
/// assert_eq!(group_sequences(&paths, &dates, 10.0).unwrap(), vec![1, 1, 3, 2]);
/// ```
pub fn group_sequences<P: AsRef<Path>>(
    paths: &[P],
    dates: &[Option<i64>],
    maxlag_s: f64,
) -> Result<Vec<u32>, Error> {
    if paths.len() != dates.len() {
        return Err(Error::InvalidArgument(format!(
            "{} paths but {} dates",
            paths.len(),
            dates.len()
        )));
    }
    let mut seqnum = vec![0u32; paths.len()];
    let mut current = 0u32;
    for members in folders_in_order(paths) {
        let mut sorted = members;
        // Dated images by date, then undated ones; `sort_by_key` is stable, so ties keep input order.
        sorted.sort_by_key(|&i| match dates[i] {
            Some(s) => (0u8, s),
            None => (1u8, 0),
        });
        let mut previous: Option<Option<i64>> = None;
        for &i in &sorted {
            let joins = match (previous, dates[i]) {
                (Some(Some(prev)), Some(date)) => within_lag(prev, date, maxlag_s),
                _ => false,
            };
            if !joins {
                current += 1;
            }
            seqnum[i] = current;
            previous = Some(dates[i]);
        }
    }
    Ok(seqnum)
}

/// Whether `date` (not earlier than `prev`) is at most `maxlag_s` seconds after it.
fn within_lag(prev: i64, date: i64, maxlag_s: f64) -> bool {
    // i128 keeps the difference exact whatever the clock; f64 is exact for any real gap.
    let gap = i128::from(date) - i128::from(prev);
    (gap as f64) <= maxlag_s
}

/// Row indices grouped by folder (parent directory), folders in order of first appearance,
/// rows in input order within a folder.
fn folders_in_order<P: AsRef<Path>>(paths: &[P]) -> Vec<Vec<usize>> {
    let mut index: std::collections::HashMap<&Path, usize> = std::collections::HashMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, p) in paths.iter().enumerate() {
        let folder = p.as_ref().parent().unwrap_or(Path::new(""));
        let g = *index.entry(folder).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[g].push(i);
    }
    groups
}

/// DeepFaune's row order after grouping (`reorderBySeqnum`): by sequence number, then input order.
///
/// ```
/// assert_eq!(deepfaune_rs::sequence::order_by_sequence(&[2, 1, 2, 1]), vec![1, 3, 0, 2]);
/// ```
pub fn order_by_sequence(seqnum: &[u32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..seqnum.len()).collect();
    order.sort_by_key(|&i| (seqnum[i], i));
    order
}

/// DeepFaune's table order (SPEC 2.6): rows by sequence number, then by file name (string
/// order of the path as text), ties in input order. Every array and table of a run's results
/// follows it.
///
/// ```
/// let paths = ["f/b.jpg", "f/a.jpg", "g/c.jpg"];
/// assert_eq!(deepfaune_rs::sequence::table_order(&paths, &[2, 2, 1]), vec![2, 1, 0]);
/// ```
pub fn table_order<P: AsRef<Path>>(paths: &[P], seqnum: &[u32]) -> Vec<usize> {
    let names: Vec<std::borrow::Cow<'_, str>> =
        paths.iter().map(|p| p.as_ref().to_string_lossy()).collect();
    let mut order: Vec<usize> = (0..paths.len().min(seqnum.len())).collect();
    order.sort_by(|&a, &b| {
        seqnum[a]
            .cmp(&seqnum[b])
            .then_with(|| names[a].cmp(&names[b]))
    });
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gap_equal_to_maxlag_stays_in_and_one_more_second_splits() {
        let p = ["f/a", "f/b", "f/c"];
        // gaps: 20 (= maxlag, stays), then 21 (> maxlag, new sequence)
        assert_eq!(
            group_sequences(&p, &[Some(0), Some(20), Some(41)], 20.0).unwrap(),
            [1, 1, 2]
        );
        // a fractional maxlag: 20 <= 20.5 stays, 21 > 20.5 splits
        assert_eq!(
            group_sequences(&p, &[Some(0), Some(20), Some(41)], 20.5).unwrap(),
            [1, 1, 2]
        );
        assert_eq!(
            group_sequences(&p, &[Some(0), Some(20), Some(41)], 21.0).unwrap(),
            [1, 1, 1]
        );
    }

    #[test]
    fn sorts_by_date_within_a_folder_and_numbers_folders_in_first_appearance_order() {
        // Folder x appears first (row 0), folder y second, even though y's rows sort first by name.
        let p = ["x/3.jpg", "y/1.jpg", "x/1.jpg", "y/2.jpg", "x/2.jpg"];
        let d = [Some(5), Some(1000), Some(100), Some(1003), Some(0)];
        // x by date: x/2 (0), x/3 (5), x/1 (100): gaps 5 (in), 95 (out) -> seq 1,1,2.
        // y: y/1 (1000), y/2 (1003) -> seq 3,3.
        assert_eq!(group_sequences(&p, &d, 10.0).unwrap(), [1, 3, 2, 3, 1]);
    }

    #[test]
    fn undated_images_are_alone_and_last_in_their_folder() {
        let p = ["f/a", "f/b", "f/c", "f/d", "g/e"];
        let d = [None, Some(10), None, Some(12), None];
        // f dated first: b(10), d(12) together = 1; then a = 2, c = 3 (input order); g/e = 4.
        assert_eq!(group_sequences(&p, &d, 10.0).unwrap(), [2, 1, 3, 1, 4]);
    }

    #[test]
    fn same_dates_in_different_folders_never_merge() {
        let p = ["a/1", "b/1"];
        assert_eq!(
            group_sequences(&p, &[Some(7), Some(7)], 10.0).unwrap(),
            [1, 2]
        );
    }

    #[test]
    fn odd_inputs() {
        let empty: [&str; 0] = [];
        assert!(group_sequences(&empty, &[], 10.0).unwrap().is_empty());
        assert!(group_sequences(&["a"], &[], 10.0).is_err());
        // NaN or negative maxlag: every image alone.
        assert_eq!(
            group_sequences(&["f/a", "f/b"], &[Some(1), Some(1)], f64::NAN).unwrap(),
            [1, 2]
        );
        assert_eq!(
            group_sequences(&["f/a", "f/b"], &[Some(1), Some(1)], -1.0).unwrap(),
            [1, 2]
        );
        // Extreme clocks do not overflow.
        let d = [Some(i64::MIN), Some(i64::MAX)];
        assert_eq!(group_sequences(&["f/a", "f/b"], &d, 1e300).unwrap(), [1, 1]);
        // Bare file names share the "" folder.
        assert_eq!(
            group_sequences(&["a.jpg", "b.jpg"], &[Some(0), Some(1)], 10.0).unwrap(),
            [1, 1]
        );
    }

    #[test]
    fn deepfaune_order() {
        assert_eq!(order_by_sequence(&[3, 1, 2, 1, 3]), [1, 3, 2, 0, 4]);
        assert!(order_by_sequence(&[]).is_empty());
    }
}
