use super::*;

fn opts(mode: SortMode) -> SortOptions {
    SortOptions {
        mode,
        blur_humans: false,
        timestamp: Some("02-03-2024_05-06-07".into()),
    }
}

fn write(dir: &Path, rel: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, bytes).unwrap();
    p
}

fn item<'a>(source: &'a Path, class: &'a str) -> SortItem<'a> {
    SortItem {
        source,
        class,
        person_boxes: &[],
    }
}

#[test]
fn copies_with_clash_suffixes_before_the_real_extension_and_a_marker() {
    let (src, dest) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = write(src.path(), "c1/IMG.jpeg", b"one");
    let b = write(src.path(), "c2/IMG.jpeg", b"two");
    let c = write(src.path(), "c3/IMG.jpeg", b"three");
    let d = write(src.path(), "c3/README", b"no extension");
    let e = write(src.path(), "c4/README", b"no extension 2");
    let items = [
        item(&a, "renard"),
        item(&b, "renard"),
        item(&c, "renard"),
        item(&d, "vide"),
        item(&e, "vide"),
    ];
    let r = sort_into_folders(dest.path(), &items, &opts(SortMode::Copy)).unwrap();
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    let root = dest.path().join("deepfaune_02-03-2024_05-06-07");
    assert_eq!(r.root, root);
    assert!(root.join(OUTPUT_MARKER).is_file());
    let names: Vec<PathBuf> = r
        .placed
        .iter()
        .map(|(_, to)| to.strip_prefix(&root).unwrap().to_path_buf())
        .collect();
    let expected = [
        "renard/IMG.jpeg",
        "renard/IMG_2.jpeg",
        "renard/IMG_3.jpeg",
        "vide/README",
        "vide/README_2",
    ];
    assert_eq!(names, expected.map(PathBuf::from));
    for (from, to) in &r.placed {
        assert_eq!(
            fs::read(from).unwrap(),
            fs::read(to).unwrap(),
            "sources stay and copies are exact"
        );
    }
    // Nothing but the marker, the two class folders and the files: no temporary file left.
    let mut all: Vec<_> = walk_files(&root);
    all.sort();
    assert_eq!(all.len(), 6);
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_second_sort_in_the_same_second_gets_its_own_root() {
    let (src, dest) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = write(src.path(), "a.jpg", b"x");
    let first = sort_into_folders(dest.path(), &[item(&a, "loup")], &opts(SortMode::Copy)).unwrap();
    let second =
        sort_into_folders(dest.path(), &[item(&a, "loup")], &opts(SortMode::Copy)).unwrap();
    assert_ne!(first.root, second.root);
    assert!(second.root.ends_with("deepfaune_02-03-2024_05-06-07_2"));
    assert_eq!(fs::read(&first.placed[0].1).unwrap(), b"x");
}

#[test]
fn move_removes_the_source_only_after_placing_it() {
    let (src, dest) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = write(src.path(), "a/1.jpg", b"moved");
    let missing = src.path().join("a/none.jpg");
    let b = write(src.path(), "b/1.jpg", b"also moved");
    let items = [item(&a, "cerf"), item(&missing, "cerf"), item(&b, "cerf")];
    let r = sort_into_folders(dest.path(), &items, &opts(SortMode::Move)).unwrap();
    assert_eq!(r.placed.len(), 2);
    assert_eq!(r.failures.len(), 1);
    assert_eq!(r.failures[0].source, missing);
    assert!(!a.exists() && !b.exists());
    assert_eq!(fs::read(&r.placed[0].1).unwrap(), b"moved");
    assert_eq!(fs::read(&r.placed[1].1).unwrap(), b"also moved");
    assert!(r.placed[1].1.ends_with("cerf/1_2.jpg"));
    // The failed file left no reserved name behind.
    assert_eq!(fs::read_dir(r.root.join("cerf")).unwrap().count(), 2);
}

#[cfg(unix)]
#[test]
fn moving_a_relative_link_keeps_it_valid() {
    let (src, dest) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let real = write(src.path(), "photos/IMG_1.JPG", b"the photo");
    let link = src.path().join("cam/IMG_1.JPG");
    fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink("../photos/IMG_1.JPG", &link).unwrap();
    let r = sort_into_folders(dest.path(), &[item(&link, "lynx")], &opts(SortMode::Move)).unwrap();
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    let placed = &r.placed[0].1;
    assert_eq!(fs::read(placed).unwrap(), b"the photo");
    assert!(fs::symlink_metadata(placed).unwrap().is_symlink());
    assert!(
        fs::symlink_metadata(&link).is_err(),
        "the source link is gone"
    );
    assert_eq!(
        fs::read(&real).unwrap(),
        b"the photo",
        "the file itself stays"
    );
}

#[test]
fn a_check_error_stops_the_sort_between_files() {
    let (src, dest) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let files: Vec<PathBuf> = (0..5)
        .map(|i| write(src.path(), &format!("{i}.jpg"), b"x"))
        .collect();
    let items: Vec<SortItem> = files.iter().map(|f| item(f, "fox")).collect();
    let mut calls = 0;
    let e = sort_into_folders_with(dest.path(), &items, &opts(SortMode::Copy), &mut || {
        calls += 1;
        if calls > 2 {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    })
    .unwrap_err();
    assert!(matches!(e, Error::Cancelled));
    let root = dest.path().join("deepfaune_02-03-2024_05-06-07/fox");
    assert_eq!(fs::read_dir(root).unwrap().count(), 2);
}

#[cfg(unix)]
#[test]
fn copies_never_write_through_a_link_at_the_old_temporary_name() {
    let t = tempfile::tempdir().unwrap();
    let a = write(t.path(), "a.jpg", b"photo");
    let victim = write(t.path(), "victim.txt", b"precious");
    let to = t.path().join("b.jpg");
    fs::write(&to, b"").unwrap(); // the reservation
    let planted = t.path().join(format!(".b.jpg.tmp-{}", std::process::id()));
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    copy_durably(&a, &to, 5).unwrap();
    assert_eq!(fs::read(&to).unwrap(), b"photo");
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
}

#[test]
fn copy_through_a_temp_file_checks_the_size() {
    let t = tempfile::tempdir().unwrap();
    let a = write(t.path(), "a.jpg", b"12345");
    let to = t.path().join("b.jpg");
    fs::write(&to, b"").unwrap(); // the reservation
    assert!(
        copy_durably(&a, &to, 6).is_err(),
        "a size mismatch must be an error"
    );
    assert_eq!(
        fs::read_dir(t.path()).unwrap().count(),
        2,
        "no temp file left"
    );
    copy_durably(&a, &to, 5).unwrap();
    assert_eq!(fs::read(&to).unwrap(), b"12345");
}

#[cfg(unix)]
#[test]
fn symlinks_point_to_the_absolute_source() {
    let (src, dest) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = write(src.path(), "x/a.jpg", b"linked");
    let b = write(src.path(), "y/a.jpg", b"linked 2");
    let r = sort_into_folders(
        dest.path(),
        &[item(&a, "lynx"), item(&b, "lynx")],
        &opts(SortMode::Symlink),
    )
    .unwrap();
    assert_eq!(
        fs::read_link(&r.placed[0].1).unwrap(),
        fs::canonicalize(&a).unwrap()
    );
    assert_eq!(fs::read(&r.placed[1].1).unwrap(), b"linked 2");
    assert!(r.placed[1].1.ends_with("lynx/a_2.jpg"));
}

#[test]
fn odd_class_names_and_sources_are_contained() {
    let (src, dest) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = write(src.path(), "a.jpg", b"x");
    let r = sort_into_folders(
        dest.path(),
        &[item(&a, "../evil/x"), item(src.path(), "dir")],
        &opts(SortMode::Copy),
    )
    .unwrap();
    assert_eq!(r.placed[0].1, r.root.join(".._evil_x").join("a.jpg"));
    assert_eq!(r.failures.len(), 1, "a directory is not sorted");
    assert_eq!(folder_name(".."), "_");
    assert_eq!(folder_name("  "), "_");
    assert_eq!(folder_name("oiseau indéfini"), "oiseau indéfini");
}

#[test]
fn box_blur_matches_a_hand_computed_reflect_101_mean() {
    // A 3x1 grey row [0, 30, 60], kernel 3. Horizontal sums with BORDER_REFLECT_101:
    //   x=0: [30, 0, 30] = 60; x=1: 0 + 30 + 60 = 90; x=2: [30, 60, 30] = 120.
    // Vertically the single row mirrors onto itself: x3. Divided by 9: 20, 30, 40.
    let mut img = RgbImage::from_fn(3, 1, |x, _| image::Rgb([(x * 30) as u8; 3]));
    blur_box(&mut img, [0.0, 0.0, 3.0, 1.0], 3);
    let got: Vec<u8> = img.pixels().map(|p| p.0[0]).collect();
    assert_eq!(got, [20, 30, 40]);
}

#[test]
fn box_blur_stays_inside_the_box() {
    let noise = |x: u32, y: u32| {
        image::Rgb([
            ((x * 37 + y * 91) % 256) as u8,
            (x * 5) as u8,
            (y * 7) as u8,
        ])
    };
    let original = RgbImage::from_fn(40, 30, noise);
    let mut img = original.clone();
    blur_box(&mut img, [10.7, 5.2, 30.9, 25.0], BLUR_KERNEL);
    for (x, y, p) in img.enumerate_pixels() {
        let inside = (10..30).contains(&x) && (5..25).contains(&y);
        if !inside {
            assert_eq!(
                p,
                original.get_pixel(x, y),
                "({x}, {y}) outside the box changed"
            );
        }
    }
    assert_ne!(img, original);
    // A uniform box stays uniform, and degenerate or NaN boxes are ignored.
    let mut flat = RgbImage::from_pixel(8, 8, image::Rgb([77, 88, 99]));
    blur_box(&mut flat, [0.0, 0.0, 8.0, 8.0], 151);
    assert!(flat.pixels().all(|p| p.0 == [77, 88, 99]));
    let before = img.clone();
    blur_box(&mut img, [f32::NAN, 3.0, 2.0, 1.0], 151);
    blur_box(&mut img, [50.0, 50.0, 60.0, 60.0], 151);
    assert_eq!(img, before);
}

#[test]
fn reflect_101_indices() {
    // len 4: ... 2 1 | 0 1 2 3 | 2 1 0 ...
    let got: Vec<usize> = (-3..=7).map(|i| reflect_101(i, 4)).collect();
    assert_eq!(got, [3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1]);
    assert_eq!(reflect_101(-5, 1), 0);
}

#[test]
fn blurred_copies_change_only_person_boxes() {
    let (src, dest) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let img = RgbImage::from_fn(64, 48, |x, y| {
        image::Rgb([(x * 4) as u8, (y * 5) as u8, ((x * y) % 256) as u8])
    });
    let png = src.path().join("p.png");
    img.save(&png).unwrap();
    let jpg = src.path().join("j.jpg");
    img.save(&jpg).unwrap();
    let plain = write(src.path(), "n.jpg", b"not decoded: no person box");
    let boxes = [[8.0, 8.0, 40.0, 40.0]];
    let items = [
        SortItem {
            source: &png,
            class: "humain",
            person_boxes: &boxes,
        },
        SortItem {
            source: &jpg,
            class: "humain",
            person_boxes: &boxes,
        },
        SortItem {
            source: &plain,
            class: "vide",
            person_boxes: &[],
        },
    ];
    let o = SortOptions {
        blur_humans: true,
        ..opts(SortMode::Copy)
    };
    let r = sort_into_folders(dest.path(), &items, &o).unwrap();
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    let out = image::open(&r.placed[0].1).unwrap().to_rgb8();
    let mut expected = img.clone();
    blur_box(&mut expected, boxes[0], BLUR_KERNEL);
    assert_eq!(out, expected, "PNG is lossless: exactly the blurred image");
    let out_jpg = image::open(&r.placed[1].1).unwrap().to_rgb8();
    assert_eq!(out_jpg.dimensions(), (64, 48));
    assert_eq!(
        fs::read(&r.placed[2].1).unwrap(),
        b"not decoded: no person box"
    );
    // An undecodable file with person boxes is a failure, never an unblurred copy.
    let bad = write(src.path(), "bad.jpg", b"garbage");
    let r = sort_into_folders(
        dest.path(),
        &[SortItem {
            source: &bad,
            class: "humain",
            person_boxes: &boxes,
        }],
        &o,
    )
    .unwrap();
    assert_eq!(r.failures.len(), 1);
    assert!(!r.root.join("humain").join("bad.jpg").exists());
}

#[test]
fn utc_stamps() {
    assert_eq!(stamp_from_unix(0), "01-01-1970_00-00-00");
    // 1_700_000_000 s = Tue 14 Nov 2023 22:13:20 UTC (date -u -d @1700000000)
    assert_eq!(stamp_from_unix(1_700_000_000), "14-11-2023_22-13-20");
    // 951_782_400 = 29 Feb 2000 00:00:00 UTC (leap day of a century leap year)
    assert_eq!(stamp_from_unix(951_782_400), "29-02-2000_00-00-00");
    assert_eq!(utc_stamp().len(), 19);
}
