//! One ONNX detector, driven by its manifest.
//!
//! Preparation ([`OnnxDetector::prepare`]) is pure and runs on decode threads; inference
//! ([`OnnxDetector::infer`]) needs the session and runs on the driver thread.

use std::path::PathBuf;

use image::RgbImage;
use ort::session::Session;
use ort::value::TensorRef;

use super::postprocess::{decode_boxes, nms, Detection};
use crate::error::{Error, ModelError};
use crate::manifest::{self, Category, DetectorManifest, InputShape, OutputLayout};
use crate::preprocess::letterbox::{fill_tensor, Letterbox};
use crate::runtime::{new_session, ModelSource, SessionOptions};

/// A letterboxed input tensor and its geometry.
#[derive(Debug, Clone)]
pub struct PreparedInput {
    /// CHW values, `3 * in_h * in_w`.
    pub tensor: Vec<f32>,
    /// Geometry, to map boxes back.
    pub letterbox: Letterbox,
}

/// An ONNX detector.
pub struct OnnxDetector {
    /// The manifest (with any threshold override applied).
    pub manifest: DetectorManifest,
    /// Identity of the weights ([`ModelSource::identity`]).
    pub source: String,
    categories: Vec<Category>,
    session: Session,
    input_name: String,
    output_name: String,
}

impl std::fmt::Debug for OnnxDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxDetector")
            .field("id", &self.manifest.id)
            .finish()
    }
}

/// Where to find a manifest's weights: embedded, an explicit file, or the model directory.
pub fn model_source(
    m: &DetectorManifest,
    weights: Option<PathBuf>,
) -> Result<ModelSource, ModelError> {
    if let Some(p) = weights {
        if !p.is_file() {
            return Err(ModelError::WeightsMissing {
                path: p,
                hint: "no such file".into(),
            });
        }
        return Ok(ModelSource::File(p));
    }
    if m.id == manifest::EMBEDDED_DETECTOR_ID && m.source_dir.is_none() {
        return Ok(ModelSource::Static(manifest::EMBEDDED_DETECTOR));
    }
    let p = manifest::weights_path(m);
    if !p.is_file() {
        let hint = if m.url.is_empty() {
            "put the ONNX file there, or pass its path".to_string()
        } else {
            format!(
                "download the official weights ({}) and convert them: `deepfaune-rs export-detector WEIGHTS.{} -o {}`",
                m.url,
                if m.url_format.is_empty() { "pt" } else { &m.url_format },
                p.display()
            )
        };
        return Err(ModelError::WeightsMissing { path: p, hint });
    }
    manifest::verify_sha256(&p, &m.sha256)?;
    Ok(ModelSource::File(p))
}

/// A stride-shaped manifest (`shape = "stride"`, dynamic height and width) on a model whose
/// input height and width are fixed: a square export of the manifest's size is run with the
/// square letterbox (what it was exported for); any other fixed size is refused.
fn adapt_to_fixed_input(m: &mut DetectorManifest, dims: Option<&[i64]>) -> Result<(), ModelError> {
    let Some([_, _, h, w]) = dims else {
        return Ok(());
    };
    if m.input.shape != InputShape::Stride || *h <= 0 || *w <= 0 {
        return Ok(());
    }
    let size = i64::from(m.input.size);
    if (*h, *w) == (size, size) {
        m.input.shape = InputShape::Square;
        return Ok(());
    }
    Err(ModelError::Mismatch(format!(
        "the model's input is fixed at {h}x{w}; the manifest '{}' expects dynamic height and width (or {size}x{size}): re-export it with dynamic axes",
        m.id
    )))
}

impl OnnxDetector {
    /// Loads the model for `manifest` from `source` and checks it against the manifest.
    pub fn new(
        mut manifest: DetectorManifest,
        source: &ModelSource,
        opts: SessionOptions,
    ) -> Result<Self, Error> {
        let session = new_session(source, opts)?;
        let input_name = match &manifest.input.name {
            Some(n) => n.clone(),
            None => session
                .inputs()
                .first()
                .map(|i| i.name().to_string())
                .ok_or_else(|| ModelError::Mismatch("model has no input".into()))?,
        };
        let Some(input) = session.inputs().iter().find(|i| i.name() == input_name) else {
            return Err(ModelError::Mismatch(format!("no input named '{input_name}'")).into());
        };
        adapt_to_fixed_input(&mut manifest, input.dtype().tensor_shape().map(|s| &s[..]))?;
        let output_name = match &manifest.output.name {
            Some(n) => n.clone(),
            None => session
                .outputs()
                .first()
                .map(|o| o.name().to_string())
                .ok_or_else(|| ModelError::Mismatch("model has no output".into()))?,
        };
        if !session.outputs().iter().any(|o| o.name() == output_name) {
            return Err(ModelError::Mismatch(format!("no output named '{output_name}'")).into());
        }
        let categories = manifest.categories();
        Ok(OnnxDetector {
            manifest,
            source: source.identity(),
            categories,
            session,
            input_name,
            output_name,
        })
    }

    /// Letterboxes an image into this detector's input tensor.
    pub fn prepare(manifest: &DetectorManifest, img: &RgbImage) -> PreparedInput {
        let lb = Letterbox::new(img.width(), img.height(), &manifest.input);
        let mut tensor = vec![0f32; 3 * (lb.in_w * lb.in_h) as usize];
        fill_tensor(img, &lb, &manifest.input, &mut tensor);
        PreparedInput {
            tensor,
            letterbox: lb,
        }
    }

    /// Runs the model on prepared inputs and returns, per input, the boxes above the threshold,
    /// after NMS, in original pixels, most confident first.
    ///
    /// Inputs of the same size are batched in one call.
    pub fn infer(&mut self, inputs: &[&PreparedInput]) -> Result<Vec<Vec<Detection>>, Error> {
        let mut out = vec![Vec::new(); inputs.len()];
        let mut start = 0;
        while start < inputs.len() {
            let dims = (inputs[start].letterbox.in_w, inputs[start].letterbox.in_h);
            let mut end = start + 1;
            while end < inputs.len()
                && (inputs[end].letterbox.in_w, inputs[end].letterbox.in_h) == dims
            {
                end += 1;
            }
            let group = &inputs[start..end];
            let raw = self.run_raw(group)?;
            for (i, r) in raw.into_iter().enumerate() {
                out[start + i] = r;
            }
            start = end;
        }
        Ok(out)
    }

    fn run_raw(&mut self, group: &[&PreparedInput]) -> Result<Vec<Vec<Detection>>, Error> {
        let (w, h) = (
            group[0].letterbox.in_w as usize,
            group[0].letterbox.in_h as usize,
        );
        let per = 3 * w * h;
        let owned;
        let data: &[f32] = if group.len() == 1 {
            &group[0].tensor
        } else {
            let mut v = Vec::with_capacity(per * group.len());
            for g in group {
                v.extend_from_slice(&g.tensor);
            }
            owned = v;
            &owned
        };
        let shape = [group.len(), 3, h, w];
        let tensor = TensorRef::from_array_view((shape, data))?;
        let outputs = self
            .session
            .run(ort::inputs![self.input_name.as_str() => tensor])?;
        let value = &outputs[self.output_name.as_str()];
        let (oshape, odata) = value.try_extract_tensor::<f32>()?;
        let dims: Vec<usize> = oshape.iter().map(|&d| d.max(0) as usize).collect();
        let nc = self.categories.len();
        let (anchors, expected_inner) = match (self.manifest.output.layout, dims.as_slice()) {
            (OutputLayout::Yolov8, [b, c, n]) if *b == group.len() && *c == 4 + nc => (*n, 4 + nc),
            (OutputLayout::Yolov5 | OutputLayout::Yolox, [b, n, c])
                if *b == group.len() && *c == 5 + nc =>
            {
                (*n, 5 + nc)
            }
            _ => {
                return Err(ModelError::Mismatch(format!(
                "output '{}' has shape {:?}; the manifest's {:?} layout with {} classes expects {}",
                self.output_name,
                dims,
                self.manifest.output.layout,
                nc,
                match self.manifest.output.layout {
                    OutputLayout::Yolov8 => format!("[batch, {}, N]", 4 + nc),
                    _ => format!("[batch, N, {}]", 5 + nc),
                }
            ))
                .into())
            }
        };
        let per_img = anchors * expected_inner;
        let pp = &self.manifest.postprocess;
        Ok(group
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let slice = &odata[i * per_img..(i + 1) * per_img];
                let cands = decode_boxes(
                    slice,
                    self.manifest.output.layout,
                    anchors,
                    &self.categories,
                    pp.threshold,
                );
                let mut kept = nms(cands, pp.nms_iou, pp.max_det);
                for d in &mut kept {
                    d.bbox = g.letterbox.to_original(d.bbox);
                }
                kept
            })
            .collect())
    }
}
