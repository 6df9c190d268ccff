//! Bindings of the whole pipeline: `Pipeline` and `PipelineResults` (detection, classification,
//! sequences, DeepFaune's table, sorting, MegaDetector JSON and Camtrap DP exports).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Mutex;

use numpy::{PyArray1, PyArray2};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use super::detect::{
    failure_dict, failure_fields, progress_hook, session_options, PyDetectionResults, PyDetector,
};
use super::errors::{to_pyerr, IntoPyResult};
use super::locks::wait_for;
use super::numpy_views::{view1, view2};
use super::review::PyReviewRows;
use crate::error::Error;
use crate::export::camtrap_dp::{
    write_camtrap_dp, CamtrapOptions, CamtrapSource, UndatedMedia, UtcOffset,
};
use crate::export::megadetector::classifications::{write_with_classifications, Classifications};
use crate::export::sort::{sort_into_folders_with, SortItem, SortMode, SortOptions};
use crate::export::table::{with_video_rows, write_results_csv, ResultRow, VIDEO_COLUMNS};
use crate::manifest::classifier::ClassifierManifest;
use crate::pipeline::{
    decide, Decided, DecisionSettings, Detectors, Finished, Pipeline, PipelineOptions, Redecide,
    Texts,
};
use crate::results::video::unsupported_video_failure;
use crate::results::VideoRecord;
use crate::review::{
    apply_corrections_to_videos, read_journal, Correction, ReviewRows, Reviewed, RunRows,
};
use crate::run::distributed::{encode_part, plan, Plan};
use crate::run::PipelineResults;
use crate::sequence::{Label, SequencePredictions};

/// Detector + classifier + DeepFaune's sequence logic (`crate::pipeline::Pipeline`).
#[pyclass(module = "deepfaune_rs._core", name = "Pipeline")]
pub struct PyPipeline {
    pub(super) pipeline: Pipeline,
}

#[pymethods]
impl PyPipeline {
    #[new]
    #[pyo3(signature = (detector, classifier = "deepfaune-v15", *, classifier_manifest = None, score_threshold = None,
                        maxlag_s = 10.0, language = "en", disabled_classes = Vec::new(), bird_head = false,
                        batch_size = 1, intra_threads = 0, class_thresholds = BTreeMap::new(), device = "cpu",
                        precision = "fp32", cache_dir = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        detector: Option<Py<PyDetector>>,
        classifier: &str,
        classifier_manifest: Option<String>,
        score_threshold: Option<f32>,
        maxlag_s: f64,
        language: &str,
        disabled_classes: Vec<String>,
        bird_head: bool,
        batch_size: usize,
        intra_threads: usize,
        class_thresholds: BTreeMap<String, f32>,
        device: &str,
        precision: &str,
        cache_dir: Option<PathBuf>,
    ) -> PyResult<Self> {
        let mut opts = PipelineOptions {
            classifier: classifier.to_string(),
            classifier_manifest,
            score_threshold,
            maxlag_s,
            language: language.to_string(),
            disabled_classes,
            class_thresholds,
            bird_head,
            batch_size,
            ..PipelineOptions::default()
        };
        opts.validate().py()?;
        opts.session = session_options(intra_threads, false, device, precision, cache_dir)?;
        let detectors = detector.map(|d| {
            let d = d.get();
            Detectors {
                set: d.detectors.clone(),
                run: d.run,
                threshold: d.threshold,
            }
        });
        let pipeline = py.detach(|| Pipeline::new(detectors, &opts)).py()?;
        Ok(PyPipeline { pipeline })
    }

    /// Class names of the classifier in the pipeline's language.
    #[getter]
    fn class_names(&self) -> Vec<String> {
        self.pipeline.class_names()
    }

    /// Runs the pipeline over files and folders. With `checkpoint`, progress is appended to that
    /// file and a later run with the same file resumes where this one stopped. With
    /// `detections` (results read from a MegaDetector file, or of a detection run), their boxes
    /// and decisions are the detection step: nothing is detected, `paths` is not walked.
    /// `outputs`: the files the results will be written to (the walk passes over them).
    #[pyo3(signature = (paths, progress = None, keep_embeddings = true, checkpoint = None, detections = None, outputs = Vec::new()))]
    #[allow(clippy::too_many_arguments)] // Python's keyword arguments, one each
    fn run(
        &self,
        py: Python<'_>,
        paths: Vec<PathBuf>,
        progress: Option<Py<PyAny>>,
        keep_embeddings: bool,
        checkpoint: Option<PathBuf>,
        detections: Option<Py<PyDetectionResults>>,
        outputs: Vec<PathBuf>,
    ) -> PyResult<PyPipelineResults> {
        let slot = Mutex::new(None);
        let given = detections.as_ref().map(|g| g.get());
        let imported = given.map(|g| g.to_imported());
        let result = py.detach(|| {
            let mut models =
                wait_for(|| self.pipeline.try_models(imported.is_none()))?.writing_to(outputs);
            let mut hook = progress_hook(&progress, &slot);
            let mut sampler = super::video::python_sampler(&slot);
            let checkpoint = checkpoint.as_deref();
            Ok::<_, PyErr>(match &imported {
                Some(imported) => {
                    models.run_imported(imported, &paths, keep_embeddings, checkpoint, &mut hook)
                }
                None => models.run(
                    &paths,
                    keep_embeddings,
                    checkpoint,
                    Some(&mut sampler),
                    &mut hook,
                ),
            })
        })?;
        if let Some(e) = slot.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(e);
        }
        let finished = result.py()?;
        // The confidence threshold the boxes were kept with: the given results' or the detector's.
        // (A run without either has failed above.)
        let threshold = match (given, self.pipeline.detectors()) {
            (Some(g), _) => g.threshold,
            (None, Some(d)) => d.threshold,
            (None, None) => 0.0,
        };
        self.results(py, finished, threshold, detections.as_ref())
    }

    /// The results of the single run over `plan`'s inputs, from the parts of its units
    /// (`parts[u]`: `PipelineResults.to_part()` of a run over unit `u`'s files, on any
    /// machine): rows in that run's order, then its sequences, labels and table.
    fn merge(
        &self,
        py: Python<'_>,
        plan: &PyRunPlan,
        parts: Vec<String>,
    ) -> PyResult<PyPipelineResults> {
        let (finished, threshold) = py
            .detach(|| {
                let models = wait_for(|| self.pipeline.try_models(false))?;
                Ok::<_, PyErr>(models.merge(&plan.plan, &parts))
            })?
            .py()?;
        self.results(py, finished, threshold, None)
    }

    /// Runs sampled video frames (`[h, w, 3]` uint8 RGB arrays) through the pipeline;
    /// `slots[k]` is the frame at sampled position `k`, or None when it could not be read.
    #[pyo3(signature = (frames, slots, source, keep_embeddings = false))]
    fn run_frames(
        &self,
        py: Python<'_>,
        frames: Vec<numpy::PyReadonlyArray3<'_, u8>>,
        slots: Vec<Option<usize>>,
        source: PathBuf,
        keep_embeddings: bool,
    ) -> PyResult<super::video::PyVideoResult> {
        super::video::run_video(self, py, frames, slots, source, keep_embeddings)
    }
}

impl PyPipeline {
    /// The Python results of a finished run whose detector threshold is `threshold`.
    fn results(
        &self,
        py: Python<'_>,
        finished: Finished,
        threshold: f32,
        detections: Option<&Py<PyDetectionResults>>,
    ) -> PyResult<PyPipelineResults> {
        let Finished {
            mut results,
            decided,
            videos,
        } = finished;
        let detection = std::mem::take(&mut results.detection);
        let mut detections_out = PyDetectionResults::new(detection, threshold);
        if let Some(given) = detections {
            detections_out.imported = given.get().imported;
            detections_out.classifications =
                given.get().classifications.permute_boxes(&decided.boxes);
        }
        let detections = Py::new(py, detections_out)?;
        PyPipelineResults::new(
            detections,
            results,
            decided,
            self.pipeline.manifest().clone(),
            self.pipeline.settings().clone(),
            Vec::new(),
            videos,
        )
    }
}

/// Results of `Pipeline.run`. Arrays are read-only views without copies. Every array and
/// column, and the detections, are in DeepFaune's table order (the rows of `table()`).
#[pyclass(module = "deepfaune_rs._core", name = "PipelineResults", frozen)]
pub struct PyPipelineResults {
    detections: Py<PyDetectionResults>,
    res: PipelineResults,
    seqnum: Vec<u32>,
    scorebase: Vec<f64>,
    score: Vec<f64>,
    text: Texts,
    table: Vec<ResultRow>,
    class_names: Vec<String>,
    preds: SequencePredictions,
    manifest: ClassifierManifest,
    settings: DecisionSettings,
    /// The corrections applied (in order) and what they say per image.
    journal: Vec<Correction>,
    reviewed: Vec<Option<Reviewed>>,
    unknown_files: usize,
    /// The run's videos (one record each, failed ones included), after the images' rows.
    video_records: Vec<VideoRecord>,
    /// The same with the corrections applied: what the table and the exports show.
    videos: Vec<VideoRecord>,
    /// What the corrections say, per video.
    video_reviewed: Vec<Option<Reviewed>>,
}

impl PyPipelineResults {
    fn new(
        detections: Py<PyDetectionResults>,
        res: PipelineResults,
        decided: Decided,
        manifest: ClassifierManifest,
        settings: DecisionSettings,
        journal: Vec<Correction>,
        video_records: Vec<VideoRecord>,
    ) -> PyResult<Self> {
        let Decided {
            preds,
            text,
            table,
            class_names,
            reviewed,
            unknown_files,
            boxes: _,
        } = decided;
        let mut videos = video_records.clone();
        let names = manifest.names(&settings.language).ok_or_else(|| {
            to_pyerr(Error::InvalidArgument(format!(
                "language '{}' is not available for {}",
                settings.language, manifest.id
            )))
        })?;
        let bird = settings.opts.bird_class.is_some();
        let video_reviewed =
            apply_corrections_to_videos(&mut videos, &journal, &manifest, &names, bird).py()?;
        let table = with_video_rows(table, &videos);
        Ok(PyPipelineResults {
            detections,
            res,
            seqnum: preds.seqnum.clone(),
            scorebase: preds.base.iter().map(|p| p.score).collect(),
            score: preds.sequence.iter().map(|p| p.score).collect(),
            text,
            table,
            class_names,
            preds,
            manifest,
            settings,
            journal,
            reviewed,
            unknown_files,
            video_records,
            videos,
            video_reviewed,
        })
    }

    /// These rows decided again with `settings` and `journal`.
    fn again(
        &self,
        py: Python<'_>,
        settings: DecisionSettings,
        journal: Vec<Correction>,
    ) -> PyResult<PyPipelineResults> {
        self.again_with(py, settings, journal, self.video_records.clone())
    }

    /// What the corrections say of each row of `reviewed`, as Python dicts (labels in the
    /// results' language).
    fn reviewed_list<'py>(
        &self,
        py: Python<'py>,
        reviewed: &[Option<Reviewed>],
    ) -> PyResult<Bound<'py, PyList>> {
        let names = self.manifest.names(&self.settings.language);
        let bird = self.settings.opts.bird_class.is_some();
        let items = reviewed
            .iter()
            .map(|r| -> PyResult<Option<Bound<'py, PyDict>>> {
                let Some(r) = r else { return Ok(None) };
                let d = PyDict::new(py);
                let label = match (r.label, &names) {
                    (Some(l), Some(n)) => Some(l.text(n, bird)),
                    _ => None,
                };
                d.set_item("label", label)?;
                d.set_item("verified", r.verified)?;
                d.set_item("by", r.by.clone())?;
                d.set_item("time", r.time.clone())?;
                Ok(Some(d))
            })
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    /// [`Self::again`] with `video_records` as the run's videos.
    fn again_with(
        &self,
        py: Python<'_>,
        settings: DecisionSettings,
        journal: Vec<Correction>,
        video_records: Vec<VideoRecord>,
    ) -> PyResult<PyPipelineResults> {
        // The detection columns live in `detections` (taken out of `res` after the run); the
        // rows come back in the new table's order (other sequences, another order).
        let given = self.detections.get();
        let mut res = self.res.clone();
        res.detection = given.res.clone();
        let decided = py
            .detach(|| decide(&mut res, &self.manifest, &settings, &journal))
            .py()?;
        let mut detections =
            PyDetectionResults::new(std::mem::take(&mut res.detection), given.threshold);
        detections.imported = given.imported;
        detections.classifications = given.classifications.permute_boxes(&decided.boxes);
        PyPipelineResults::new(
            Py::new(py, detections)?,
            res,
            decided,
            self.manifest.clone(),
            settings,
            journal,
            video_records,
        )
    }
}

#[pymethods]
impl PyPipelineResults {
    fn __len__(&self) -> usize {
        self.seqnum.len()
    }
    /// The detection results (boxes, categories, failures).
    #[getter]
    fn detections(&self, py: Python<'_>) -> Py<PyDetectionResults> {
        self.detections.clone_ref(py)
    }
    /// Every file that could not be processed (`deepfaune_rs.errors.Failure` dicts): the images'
    /// and the walk's, then the failed videos' (the run's order), then the video files in
    /// formats DeepFaune does not read.
    #[getter]
    fn failures<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for f in &self.detections.get().res.failures {
            list.append(failure_dict(py, f)?)?;
        }
        for v in &self.videos {
            if let Some(f) = &v.failure {
                list.append(failure_fields(
                    py, &v.path, &f.stage, &f.kind, &f.reason, None,
                )?)?;
            }
        }
        for p in &self.res.discovered.unsupported_videos {
            list.append(failure_dict(py, &unsupported_video_failure(p))?)?;
        }
        Ok(list)
    }
    /// Images the checkpoint held under their path that are not the file it recorded
    /// (replaced or edited since): processed again.
    #[getter]
    fn changed_since_checkpoint<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(
            py,
            self.res
                .changed_since_checkpoint
                .iter()
                .map(|p| p.as_os_str()),
        )
    }
    /// Metadata files of NAS and operating systems (`@eaDir`, `._*`, `.DS_Store`,
    /// `Thumbs.db`, `__MACOSX`) the walk skipped.
    #[getter]
    fn skipped_metadata(&self) -> usize {
        self.res.discovered.skipped_metadata
    }
    /// Raw logits per image, `[n, classes]` (zeros where no animal was classified).
    #[getter]
    fn logits<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let r = &slf.get().res;
        view2(slf.clone().into_any(), &r.logits, r.num_classes)
    }
    /// Embedding per image, `[n, d]` (zeros where no animal was classified; `[n, 0]` if not kept).
    #[getter]
    fn embeddings<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let r = &slf.get().res;
        view2(slf.clone().into_any(), &r.embeddings, r.embedding_dim)
    }
    /// Bird-head logits per image, `[n, groups]`.
    #[getter]
    fn bird_logits<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let r = &slf.get().res;
        view2(slf.clone().into_any(), &r.bird_logits, r.num_bird_groups)
    }
    /// Whether each image's logits come from the classifier.
    #[getter]
    fn classified(&self) -> Vec<bool> {
        self.res.classified.clone()
    }
    /// Sequence number per image (1..N).
    #[getter]
    fn seqnum<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyArray1<u32>>> {
        view1(slf.clone().into_any(), &slf.get().seqnum)
    }
    /// Per-image score (two decimals, truncated).
    #[getter]
    fn scorebase<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyArray1<f64>>> {
        view1(slf.clone().into_any(), &slf.get().scorebase)
    }
    /// Per-sequence score, repeated on each image.
    #[getter]
    fn score<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyArray1<f64>>> {
        view1(slf.clone().into_any(), &slf.get().score)
    }
    /// Per-image prediction.
    #[getter]
    fn predictionbase(&self) -> Vec<String> {
        self.text.predictionbase.clone()
    }
    /// Per-sequence prediction, on each image.
    #[getter]
    fn prediction(&self) -> Vec<String> {
        self.text.prediction.clone()
    }
    /// Per-sequence best label whatever the threshold.
    #[getter]
    fn top1(&self) -> Vec<String> {
        self.text.top1.clone()
    }
    /// Class names (the logits' columns).
    #[getter]
    fn class_names(&self) -> Vec<String> {
        self.class_names.clone()
    }

    /// The same rows decided again from the stored logits, detections and dates, with other
    /// settings (None keeps the run's): `score_threshold`, `class_thresholds` (`{class: threshold}`,
    /// replacing all per-class thresholds), `disabled_classes` (replacing the run's list),
    /// `maxlag_s`. The corrections applied so far are applied again.
    #[pyo3(signature = (score_threshold = None, class_thresholds = None, disabled_classes = None, maxlag_s = None))]
    fn redecide(
        &self,
        py: Python<'_>,
        score_threshold: Option<f32>,
        class_thresholds: Option<BTreeMap<String, f32>>,
        disabled_classes: Option<Vec<String>>,
        maxlag_s: Option<f64>,
    ) -> PyResult<PyPipelineResults> {
        let changes = Redecide {
            score_threshold,
            class_thresholds,
            disabled_classes,
            maxlag_s,
        };
        let settings = self.settings.redecide(&self.manifest, changes).py()?;
        self.again(py, settings, self.journal.clone())
    }

    /// These results with the corrections journal at `path` applied after those applied
    /// already (a missing file is an empty journal).
    fn with_corrections(&self, py: Python<'_>, path: PathBuf) -> PyResult<PyPipelineResults> {
        let more = py.detach(|| read_journal(&path)).py()?;
        let mut journal = self.journal.clone();
        journal.extend(more);
        self.again(py, self.settings.clone(), journal)
    }

    /// These results holding `records` as the run's videos (one JSON object per video, the
    /// `VideoRecord` form of `video_records`), the corrections applied so far applied to them
    /// too: a run merged from parts (`Pipeline.merge`) takes its units' video records this way,
    /// and its video files in formats DeepFaune does not read (`unsupported`, listed in
    /// `failures`).
    #[pyo3(signature = (records, unsupported = Vec::new()))]
    fn with_videos(
        &self,
        py: Python<'_>,
        records: Vec<String>,
        unsupported: Vec<PathBuf>,
    ) -> PyResult<PyPipelineResults> {
        let records = records
            .iter()
            .enumerate()
            .map(|(k, line)| {
                serde_json::from_str::<VideoRecord>(line)
                    .map_err(|e| to_pyerr(Error::InvalidArgument(format!("video record {k}: {e}"))))
            })
            .collect::<PyResult<Vec<_>>>()?;
        let mut out = self.again_with(py, self.settings.clone(), self.journal.clone(), records)?;
        out.res.discovered.unsupported_videos = unsupported;
        Ok(out)
    }

    /// The run's videos with the corrections applied, one JSON object each (the `VideoRecord`
    /// exchange format, `box` for its deciding box), in the run's order (given videos, then
    /// those the walk met): the rows after the images' in `table()`.
    #[getter]
    fn video_records(&self) -> PyResult<Vec<String>> {
        self.videos
            .iter()
            .map(|v| {
                serde_json::to_string(v)
                    .map_err(|e| to_pyerr(Error::InvalidArgument(e.to_string())))
            })
            .collect()
    }

    /// Per image, what the corrections say: None, or a dict with `label` (None: verified only),
    /// `verified`, `by` and `time`.
    #[getter]
    fn reviewed<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        self.reviewed_list(py, &self.reviewed)
    }

    /// Per video, what the corrections say (as `reviewed`).
    #[getter]
    fn video_reviewed<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        self.reviewed_list(py, &self.video_reviewed)
    }

    /// The review page's rows of these results: the images, then (`videos`) the videos.
    #[pyo3(signature = (videos = true))]
    fn review_rows(&self, videos: bool) -> PyReviewRows {
        let det = self.detections.get();
        let bird_head = self.settings.opts.bird_class.is_some();
        let run = RunRows {
            detection: &det.res,
            preds: &self.preds,
            predictionbase: &self.text.predictionbase,
            prediction: &self.text.prediction,
            top1: &self.text.top1,
            reviewed: &self.reviewed,
            video_reviewed: &self.video_reviewed,
            videos: if videos { &self.videos } else { &[] },
            names: self.manifest.names(&self.settings.language),
            bird_head,
        };
        PyReviewRows::new(ReviewRows::of_run(
            run,
            self.labels(),
            self.manifest.id.clone(),
        ))
    }

    /// File entries of the applied corrections that name no image of these results.
    #[getter]
    fn unknown_corrections(&self) -> usize {
        self.unknown_files
    }

    /// The settings the predictions were decided with: score_threshold (also under its old
    /// name, threshold), class_thresholds (English names), disabled_classes (English names),
    /// maxlag_s, language, bird_head.
    #[getter]
    fn settings<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let en = self
            .manifest
            .classes
            .get("en")
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let name = |i: usize| en.get(i).cloned().unwrap_or_else(|| i.to_string());
        let o = &self.settings.opts;
        let d = PyDict::new(py);
        d.set_item("score_threshold", o.threshold)?;
        d.set_item("threshold", o.threshold)?;
        let ct = PyDict::new(py);
        for &(i, t) in &o.class_thresholds {
            ct.set_item(name(i), t)?;
        }
        d.set_item("class_thresholds", ct)?;
        d.set_item(
            "disabled_classes",
            o.disabled.iter().map(|&i| name(i)).collect::<Vec<_>>(),
        )?;
        d.set_item("maxlag_s", self.settings.maxlag_s)?;
        d.set_item("language", self.settings.language.clone())?;
        d.set_item("bird_head", o.bird_class.is_some())?;
        Ok(d)
    }

    /// Every label a prediction can take, in the results' language: the classes, the bird
    /// groups (with the bird head), then human, vehicle, empty and undefined.
    #[getter]
    fn labels(&self) -> Vec<String> {
        let bird = self.settings.opts.bird_class.is_some();
        crate::review::label_texts(&self.manifest, &self.settings.language, bird)
            .unwrap_or_default()
    }

    /// DeepFaune's table as columns (sorted by seqnum then filename: the order of every array),
    /// then one row per video, and with videos the `media_type` and `keyframe` columns.
    fn table<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        let t = &self.table;
        d.set_item(
            "filename",
            t.iter().map(|r| r.filename.clone()).collect::<Vec<_>>(),
        )?;
        d.set_item("date", t.iter().map(|r| r.date.clone()).collect::<Vec<_>>())?;
        d.set_item("seqnum", t.iter().map(|r| r.seqnum).collect::<Vec<_>>())?;
        d.set_item(
            "predictionbase",
            t.iter()
                .map(|r| r.predictionbase.clone())
                .collect::<Vec<_>>(),
        )?;
        d.set_item(
            "scorebase",
            t.iter().map(|r| r.scorebase).collect::<Vec<_>>(),
        )?;
        d.set_item(
            "prediction",
            t.iter().map(|r| r.prediction.clone()).collect::<Vec<_>>(),
        )?;
        d.set_item("score", t.iter().map(|r| r.score).collect::<Vec<_>>())?;
        d.set_item("top1", t.iter().map(|r| r.top1.clone()).collect::<Vec<_>>())?;
        d.set_item("count", t.iter().map(|r| r.count).collect::<Vec<_>>())?;
        d.set_item(
            "humancount",
            t.iter().map(|r| r.humancount).collect::<Vec<_>>(),
        )?;
        d.set_item(
            "status",
            t.iter().map(|r| r.status.clone()).collect::<Vec<_>>(),
        )?;
        if !self.videos.is_empty() {
            let media = t.iter().map(|r| r.media);
            d.set_item(
                VIDEO_COLUMNS[0],
                media.clone().map(|m| m.media_type()).collect::<Vec<_>>(),
            )?;
            d.set_item(
                VIDEO_COLUMNS[1],
                media.map(|m| m.keyframe()).collect::<Vec<_>>(),
            )?;
        }
        Ok(d)
    }

    /// The rows as a part of a distributed run (`Pipeline.merge`): a header line, then one
    /// checkpoint record per row, floats as their exact bits.
    fn to_part(&self, py: Python<'_>) -> PyResult<String> {
        let det = self.detections.get();
        py.detach(|| encode_part(&self.res, &det.res, det.threshold))
            .py()
    }

    /// Writes DeepFaune's CSV (the rows of `table()`) atomically; `csv_safe` quotes cells a
    /// spreadsheet would run as formulas.
    #[pyo3(signature = (path, csv_safe = false))]
    fn to_csv(&self, py: Python<'_>, path: PathBuf, csv_safe: bool) -> PyResult<()> {
        py.detach(|| write_results_csv(&path, &self.table, csv_safe))
            .py()
    }

    /// Writes MegaDetector batch JSON 1.6 with the species classifications (top 3 at the
    /// single-image temperature on each classified box) atomically; the videos after the images
    /// (`frame_rate`, `frames_processed`, `frame_number` on each box).
    #[pyo3(signature = (path, root = None))]
    fn to_megadetector_json(
        &self,
        py: Python<'_>,
        path: PathBuf,
        root: Option<PathBuf>,
    ) -> PyResult<()> {
        let det = self.detections.get();
        let human: Vec<Option<usize>> = self
            .reviewed
            .iter()
            .map(|r| match r.as_ref().and_then(|r| r.label) {
                Some(Label::Class(c)) => Some(c),
                _ => None,
            })
            .collect();
        let cls = Classifications {
            class_names: self
                .manifest
                .classes
                .get("en")
                .map(Vec::as_slice)
                .unwrap_or(&[]),
            logits: &self.res.logits,
            classified: &self.res.classified,
            disabled: &self.settings.opts.disabled,
            temperature: self.manifest.temperatures().image,
            human: &human,
        };
        py.detach(|| {
            write_with_classifications(
                &det.res,
                &self.videos,
                &path,
                root.as_deref(),
                det.threshold,
                &cls,
            )
        })
        .py()
    }

    /// Writes a Camtrap DP 1.0.2 package (the images and the videos) into `folder`; returns
    /// the warnings.
    #[pyo3(signature = (folder, deployments = None, deployment_of = None, timezone = None,
                        root = None, undated = "exclude", metadata = None))]
    #[allow(clippy::too_many_arguments)]
    fn to_camtrap_dp(
        &self,
        py: Python<'_>,
        folder: PathBuf,
        deployments: Option<Vec<BTreeMap<String, String>>>,
        deployment_of: Option<BTreeMap<String, String>>,
        timezone: Option<String>,
        root: Option<PathBuf>,
        undated: &str,
        metadata: Option<String>,
    ) -> PyResult<Vec<String>> {
        let bad = |m: String| to_pyerr(Error::InvalidArgument(m));
        let timezone = match timezone {
            Some(t) => Some(UtcOffset::parse(&t).ok_or_else(|| {
                bad(format!(
                    "timezone '{t}': use an offset such as +02:00, -05:30 or Z"
                ))
            })?),
            None => None,
        };
        let undated = match undated {
            "exclude" => UndatedMedia::Exclude,
            "mtime" => UndatedMedia::FileTime,
            other => return Err(bad(format!("undated '{other}': use exclude or mtime"))),
        };
        let metadata = match metadata
            .as_deref()
            .map(serde_json::from_str::<serde_json::Value>)
        {
            None => serde_json::Map::new(),
            Some(Ok(serde_json::Value::Object(m))) => m,
            Some(_) => return Err(bad("metadata must be a JSON object".into())),
        };
        let opts = CamtrapOptions {
            deployments,
            deployment_of: deployment_of.unwrap_or_default(),
            timezone,
            root,
            undated,
            metadata,
        };
        let src = CamtrapSource {
            detection: &self.detections.get().res,
            predictions: &self.preds,
            manifest: &self.manifest,
            videos: &self.videos,
            reviewed: &self.reviewed,
            video_reviewed: &self.video_reviewed,
        };
        py.detach(|| write_camtrap_dp(&src, &folder, &opts)).py()
    }

    /// Copies/moves/links every readable image and video into
    /// `<dest>/deepfaune_<timestamp>/<prediction>/`.
    /// Returns `(root, [(source, destination)], [(source, reason)])`.
    #[pyo3(signature = (dest, mode = "copy", blur_humans = false, timestamp = None))]
    fn sort_into<'py>(
        &self,
        py: Python<'py>,
        dest: PathBuf,
        mode: &str,
        blur_humans: bool,
        timestamp: Option<String>,
    ) -> PyResult<(PathBuf, Bound<'py, PyList>, Bound<'py, PyList>)> {
        let mode = match mode {
            "copy" => SortMode::Copy,
            "move" => SortMode::Move,
            "symlink" => SortMode::Symlink,
            other => {
                return Err(to_pyerr(Error::InvalidArgument(format!(
                    "mode '{other}': use copy, move or symlink"
                ))))
            }
        };
        let det = self.detections.get();
        let d = &det.res;
        if blur_humans && d.no_person_class {
            return Err(to_pyerr(Error::InvalidArgument(format!(
                "blur_humans: the detector ({}) has no person class, so people are neither found \
                 nor blurred; run with one that finds people (DFbsMDS, MDS, DF)",
                d.detector
            ))));
        }
        let mut person: Vec<Vec<[f32; 4]>> = vec![Vec::new(); d.len()];
        for k in 0..d.det_image.len() {
            if d.det_category[k] == 1 {
                person[d.det_image[k] as usize].push(d.det_xyxy[k]);
            }
        }
        let items: Vec<SortItem<'_>> = (0..d.len())
            .filter(|&i| d.category[i] != crate::run::detection::CATEGORY_FAILED)
            .map(|i| SortItem {
                source: &d.paths[i],
                class: &self.text.prediction[i],
                person_boxes: &person[i],
            })
            .chain(
                self.videos
                    .iter()
                    .filter(|v| v.failure.is_none())
                    .map(|v| SortItem {
                        source: &v.path,
                        class: &v.prediction,
                        person_boxes: &[],
                    }),
            )
            .collect();
        let opts = SortOptions {
            mode,
            blur_humans,
            timestamp,
        };
        // Ctrl-C is checked between files: a KeyboardInterrupt stops the sort there.
        let slot = Mutex::new(None);
        let report = py.detach(|| {
            sort_into_folders_with(&dest, &items, &opts, &mut || {
                Python::attach(|py| py.check_signals()).map_err(|e| {
                    *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    Error::Cancelled
                })
            })
        });
        if let Some(e) = slot.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(e);
        }
        let report = report.py()?;
        let placed = PyList::new(
            py,
            report
                .placed
                .iter()
                .map(|(s, t)| (s.as_os_str(), t.as_os_str())),
        )?;
        let failed = PyList::new(
            py,
            report
                .failures
                .iter()
                .map(|f| (f.source.as_os_str(), f.reason.clone())),
        )?;
        Ok((report.root, placed, failed))
    }
}

fn os(p: &std::path::Path) -> OsString {
    p.as_os_str().to_os_string()
}

fn strings(paths: &[PathBuf]) -> Vec<OsString> {
    paths.iter().map(|p| p.as_os_str().to_os_string()).collect()
}

/// A run cut into one unit per folder (the walk done once, listings only).
#[pyclass(module = "deepfaune_rs._core", name = "RunPlan", frozen)]
pub struct PyRunPlan {
    plan: Plan,
}

#[pymethods]
impl PyRunPlan {
    #[new]
    fn new(py: Python<'_>, paths: Vec<PathBuf>) -> Self {
        PyRunPlan {
            plan: py.detach(|| plan(&paths)),
        }
    }
    /// The units: `(folder, images, videos)`, each in walk order.
    #[getter]
    #[allow(clippy::type_complexity)]
    fn units(&self) -> Vec<(OsString, Vec<OsString>, Vec<OsString>)> {
        self.plan
            .units
            .iter()
            .map(|u| (os(&u.folder), strings(&u.images), strings(&u.videos)))
            .collect()
    }
    /// Videos in DeepFaune's formats, in walk order.
    #[getter]
    fn videos(&self) -> Vec<OsString> {
        strings(&self.plan.discovered.videos)
    }
    /// Video files in formats DeepFaune does not read, in walk order.
    #[getter]
    fn unsupported_videos(&self) -> Vec<OsString> {
        strings(&self.plan.discovered.unsupported_videos)
    }
    /// Images, all units together.
    fn __len__(&self) -> usize {
        self.plan.order.len()
    }
}

/// True when the checkpoint at `path` ends with the line of a finished run.
#[pyfunction]
fn checkpoint_is_complete(path: PathBuf) -> bool {
    crate::run::checkpoint::is_complete(&path)
}

/// What the checkpoint of the results at `results` (the table or the checkpoint) says to load
/// the run again: `checkpoint`, `detector`, `classifier`, `score_threshold`, `maxlag_s`,
/// `language`, `inputs`, `keep_embeddings`.
#[pyfunction]
fn run_of_checkpoint<'py>(py: Python<'py>, results: PathBuf) -> PyResult<Bound<'py, PyDict>> {
    let r = crate::run::checkpoint::run_of_checkpoint(&results).py()?;
    let d = PyDict::new(py);
    d.set_item("checkpoint", r.checkpoint.as_os_str())?;
    d.set_item("detector", r.detector)?;
    d.set_item("classifier", r.classifier)?;
    d.set_item("score_threshold", r.score_threshold)?;
    d.set_item("maxlag_s", r.maxlag_s)?;
    d.set_item("language", r.language)?;
    d.set_item("inputs", r.inputs)?;
    d.set_item("keep_embeddings", r.keep_embeddings)?;
    Ok(d)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(checkpoint_is_complete, m)?)?;
    m.add_function(wrap_pyfunction!(run_of_checkpoint, m)?)?;
    m.add_class::<PyPipeline>()?;
    m.add_class::<PyRunPlan>()?;
    m.add_class::<PyPipelineResults>()?;
    Ok(())
}
