//! What the notebooks show of a result, as self-contained HTML: one image with its boxes
//! ([`figure_html`]), a few ([`ReviewRows::gallery_html`]) and a result's summary
//! ([`summary_html`]). Boxes are SVG over the picture in a `viewBox` of the image's upright
//! pixels; labels are HTML over the SVG so they stay sharp and readable at any size.

use std::fmt::Write as _;
use std::path::Path;

use base64::Engine as _;

use super::page::{round_to, split_name, ReviewRows, Row};
use super::thumbnail::thumbnail_cached;

/// Box colours by detection category (animal, person, vehicle); white for any other.
pub const BOX_COLOURS: [&str; 3] = ["#ff3b30", "#0a84ff", "#bf5af2"];
const KINDS: [&str; 3] = ["animal", "person", "vehicle"];

/// `s` with `&`, `<`, `>`, `"` and `'` escaped (Python's `html.escape`): safe in text and in
/// quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

fn colour(category: u8) -> &'static str {
    BOX_COLOURS
        .get(usize::from(category))
        .copied()
        .unwrap_or("#ffffff")
}

/// SVG boxes over an image, in a `viewBox` of its upright pixels; the classified box carries
/// the image's label and every box its confidence, in text `label_px` screen pixels high
/// whatever the picture's size. Coordinates are those of the page's JSON (0.1 pixel).
pub fn svg_boxes(r: &Row, label_px: f64) -> String {
    let (w, h) = (r.size[0].max(1), r.size[1].max(1));
    let mut s = format!(
        "<svg class=\"boxes\" viewBox=\"0 0 {w} {h}\" preserveAspectRatio=\"none\" \
         style=\"position:absolute;left:0;top:0;width:100%;height:100%;overflow:visible\">"
    );
    let xyxy = |b: &super::RowBox| b.xyxy.map(|x| round_to(x.into(), 1));
    for b in &r.boxes {
        let [x1, y1, x2, y2] = xyxy(b);
        let _ = write!(
            s,
            "<rect x=\"{x1:.1}\" y=\"{y1:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" \
             stroke=\"{}\" stroke-width=\"3\" vector-effect=\"non-scaling-stroke\"/>",
            x2 - x1,
            y2 - y1,
            colour(b.category)
        );
    }
    s.push_str("</svg>");
    for b in &r.boxes {
        let [x1, y1, _, _] = xyxy(b);
        let mut text = if b.classified {
            format!("{} {:.2}", r.predictionbase, round_to(r.scorebase, 2))
        } else {
            KINDS
                .get(usize::from(b.category))
                .unwrap_or(&"?")
                .to_string()
        };
        let _ = write!(text, " ({:.2})", round_to(b.conf.into(), 3));
        let _ = write!(
            s,
            "<span class=\"boxlabel\" style=\"position:absolute;left:{:.2}%;top:{:.2}%;\
             transform:translateY(-100%);background:{};color:#fff;font:600 {label_px}px/1.25 \
             sans-serif;padding:0 3px;white-space:nowrap\">{}</span>",
            100.0 * x1 / f64::from(w),
            100.0 * y1 / f64::from(h),
            colour(b.category),
            escape(&text)
        );
    }
    s
}

/// An image (`jpeg`, its picture) with its boxes and labels, `width_px` wide, captioned
/// with its name, labels, sequence and date.
pub fn figure_html(r: &Row, jpeg: &[u8], width_px: u32, label_px: f64) -> String {
    let data = base64::engine::general_purpose::STANDARD.encode(jpeg);
    let caption = format!(
        "{}: {} {:.2} (image: {} {:.2}), seq {}, {}",
        escape(split_name(&r.path).1),
        escape(&r.prediction),
        round_to(r.score, 2),
        escape(&r.predictionbase),
        round_to(r.scorebase, 2),
        r.seqnum,
        r.date
            .as_deref()
            .filter(|d| !d.is_empty())
            .unwrap_or("no date")
    );
    format!(
        "<figure style=\"display:inline-block;margin:4px;width:{width_px}px\">\
         <div style=\"position:relative;width:{width_px}px\">\
         <img src=\"data:image/jpeg;base64,{data}\" style=\"display:block;width:100%\"/>\
         {}</div><figcaption style=\"font:13px sans-serif\">{caption}</figcaption></figure>",
        svg_boxes(r, label_px)
    )
}

impl ReviewRows {
    /// Row `i` drawn `width_px` wide ([`figure_html`]), its picture made (or read) in the
    /// thumbnail cache `cache_dir`.
    pub fn figure_html(
        &self,
        i: usize,
        width_px: u32,
        label_px: f64,
        cache_dir: &Path,
    ) -> Result<String, crate::error::Error> {
        let r = &self.rows()[i];
        let jpeg = thumbnail_cached(Path::new(&r.path), width_px.max(64), cache_dir)?;
        Ok(figure_html(r, &jpeg, width_px, label_px))
    }

    /// Rows `picks` drawn `width_px` wide with 12 px labels, in one `<div>`; an image that
    /// cannot be read is a line saying why.
    pub fn gallery_html(&self, picks: &[usize], width_px: u32, cache_dir: &Path) -> String {
        let mut parts = String::new();
        for &i in picks {
            match self.figure_html(i, width_px, 12.0, cache_dir) {
                Ok(f) => parts.push_str(&f),
                Err(e) => {
                    let name = split_name(&self.rows()[i].path).1;
                    let _ = write!(
                        parts,
                        "<div>{}: {}</div>",
                        escape(name),
                        escape(&e.to_string())
                    );
                }
            }
        }
        if parts.is_empty() {
            parts.push_str("no image matches");
        }
        format!("<div>{parts}</div>")
    }
}

/// A result's summary (its `_repr_html_`): counts of images, sequences, `videos` and
/// `failures`, the images per prediction (most first, then in order of appearance), and up to
/// four animal images.
pub fn summary_html(rows: &ReviewRows, videos: usize, failures: usize, cache_dir: &Path) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for r in rows.rows() {
        match counts.iter_mut().find(|(p, _)| *p == r.prediction) {
            Some((_, n)) => *n += 1,
            None => counts.push((r.prediction.as_str(), 1)),
        }
    }
    counts.sort_by_key(|c| std::cmp::Reverse(c.1)); // stable: ties keep their first appearance
    let table: String = counts
        .iter()
        .map(|(p, n)| format!("<tr><td>{}</td><td>{n}</td></tr>", escape(p)))
        .collect();
    let n_seq = rows.rows().iter().map(|r| r.seqnum).max().unwrap_or(0);
    let pictures = if rows.is_empty() {
        String::new()
    } else {
        let picks = rows.pick(None, Some("animal"), 4).unwrap_or_default();
        rows.gallery_html(&picks, 200, cache_dir)
    };
    format!(
        "<div><b>PipelineResult</b>: {} images, {n_seq} sequences, {videos} videos, {failures} \
         failures<table><tr><th>prediction</th><th>images</th></tr>{table}</table>{pictures}</div>",
        rows.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::review::RowBox;

    fn row(boxes: Vec<RowBox>) -> Row {
        Row {
            key: "a/b<1>.jpg".into(),
            path: "a/b<1>.jpg".into(),
            date: None,
            category: 1,
            size: [400, 200],
            boxes,
            failed: false,
            seqnum: 3,
            predictionbase: "red deer".into(),
            scorebase: 0.876,
            prediction: "red & deer".into(),
            score: 0.5,
            top1: "red deer".into(),
            count: 1,
            humancount: 1,
            reviewed: None,
            video: false,
            keyframe: None,
        }
    }

    #[test]
    fn escapes_what_python_html_escape_does() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#x27;&amp;&#x27;&lt;/a&gt;"
        );
        assert_eq!(escape("chamois é"), "chamois é");
    }

    #[test]
    fn boxes_in_image_pixels_labels_at_their_corner_in_percent() {
        let boxes = vec![
            RowBox {
                xyxy: [40.0, 50.0, 140.26, 150.0],
                category: 0,
                conf: 0.9,
                classified: true,
            },
            RowBox {
                xyxy: [200.0, 20.0, 300.0, 120.0],
                category: 1,
                conf: 0.456,
                classified: false,
            },
        ];
        let s = svg_boxes(&row(boxes), 14.0);
        assert!(
            s.starts_with("<svg class=\"boxes\" viewBox=\"0 0 400 200\""),
            "{s}"
        );
        // By hand: width 140.26 -> 140.3 (0.1 px) - 40 = 100.3; height 100.
        assert!(s.contains(
            "<rect x=\"40.0\" y=\"50.0\" width=\"100.3\" height=\"100.0\" fill=\"none\" \
             stroke=\"#ff3b30\""
        ));
        assert!(s.contains("<rect x=\"200.0\" y=\"20.0\" width=\"100.0\" height=\"100.0\""));
        assert!(s.contains("stroke=\"#0a84ff\""));
        assert_eq!(s.matches("<rect").count(), 2);
        // Labels: 40/400 = 10%, 50/200 = 25%; 200/400 = 50%, 20/200 = 10%.
        assert!(s.contains("left:10.00%;top:25.00%;"), "{s}");
        assert!(s.contains("font:600 14px/1.25"), "{s}");
        assert!(s.contains(">red deer 0.88 (0.90)</span>"), "{s}");
        assert!(s.contains("left:50.00%;top:10.00%;"), "{s}");
        // 0.456 -> 0.456 (3 decimals, the JSON's) -> 0.46.
        assert!(s.contains(">person (0.46)</span>"), "{s}");
        // No box: an empty overlay; a zero size is taken as 1 pixel.
        let mut empty = row(Vec::new());
        empty.size = [0, 0];
        assert_eq!(
            svg_boxes(&empty, 12.0),
            "<svg class=\"boxes\" viewBox=\"0 0 1 1\" preserveAspectRatio=\"none\" \
             style=\"position:absolute;left:0;top:0;width:100%;height:100%;overflow:visible\">\
             </svg>"
        );
    }

    #[test]
    fn figure_embeds_the_picture_and_an_escaped_caption() {
        let f = figure_html(&row(Vec::new()), b"abc", 240, 12.0);
        // base64 of "abc" is "YWJj".
        assert!(f.contains("src=\"data:image/jpeg;base64,YWJj\""), "{f}");
        assert!(f.contains("width:240px"));
        assert!(
            f.contains(
                ">b&lt;1&gt;.jpg: red &amp; deer 0.50 (image: red deer 0.88), seq 3, no date<"
            ),
            "{f}"
        );
    }
}
