//! Bindings of the whole pipeline: `Pipeline` and `PipelineResults` (detection, classification,
//! sequences, DeepFaune's table, sorting, MegaDetector JSON and Camtrap DP exports).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Mutex;

use numpy::{PyArray1, PyArray2};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyString};

use super::args::{argument_error, detector_ids, renamed, require, text, Inputs, ProgressArg};
use super::detect::{
    failure_dict, failure_fields, progress_hook, session_options, PyDetectionResults, PyDetector,
};
use super::errors::{to_pyerr, IntoPyResult};
use super::locks::wait_for;
use super::megadetector::read_megadetector_json;
use super::numpy_views::{view1, view2};
use super::review::PyReviewRows;
use super::video::PyVideoRecord;
use crate::error::Error;
use crate::export::camtrap_dp::{
    read_deployments, write_camtrap_dp, CamtrapOptions, CamtrapSource, UndatedMedia, UtcOffset,
};
use crate::export::megadetector::classifications::write_with_classifications;
use crate::export::sort::{sort_into_folders_with, SortItem, SortMode, SortOptions};
use crate::export::table::{with_video_rows, write_results_csv, ResultRow, VIDEO_COLUMNS};
use crate::import::megadetector::JsonRules;
use crate::manifest::classifier::{
    ClassifierManifest, DEFAULT_CLASSIFIER, LANGUAGES, LANGUAGE_ALIASES,
};
use crate::pipeline::{
    classifications, decide, human_classes, Decided, DecisionSettings, Detectors, Finished,
    Pipeline, PipelineOptions, Redecide, Texts, DEFAULT_DETECTOR_MODE,
};
use crate::results::video::unsupported_video_failure;
use crate::results::VideoRecord;
use crate::review::{
    apply_corrections_to_videos, read_journal, Correction, ReviewRows, Reviewed, RunRows,
};
use crate::run::distributed::{encode_part, plan, Plan};
use crate::run::PipelineResults;
use crate::sequence::SequencePredictions;

/// DeepFaune's pipeline: detect, classify the best animal crop, group images into
/// sequences per folder (``maxlag_s``), and average the logits over each sequence with the
/// classifier version's temperatures.
///
/// ``detector`` is a :class:`Detector` or anything ``Detector(...)`` accepts (default
/// ``"DFbsMDS"``, DeepFaune's default: needs the DF and MegaDetector weights; ``"md-lite"`` is
/// embedded). With ``detector=None, detector_mode=None`` no detector is loaded: the pipeline
/// then only classifies given boxes (``run(..., detections=...)``). ``classifier`` is a
/// built-in id (``deepfaune-v15``, the default and DeepFaune's current release;
/// ``deepfaune-v14``, ``-v13``, ``-v11``), a manifest ``.toml`` or an ``.onnx`` file (with
/// ``classifier_manifest=``, by default the v1.5 manifest). ``language``: one of
/// :data:`LANGUAGES` that the classifier has (``no``, ``se`` and ``pt`` since 1.5; ``sv`` is
/// accepted for ``se``). ``disabled_classes`` are class names (any language) dropped before the
/// softmax. ``score_threshold``: a sequence whose score is below it is ``undefined`` (default:
/// the classifier manifest's ``[postprocess] threshold``, 0.8 for DeepFaune's classifiers;
/// ``threshold`` is its old name, deprecated).
///
/// Before anything is loaded, the weights of every built-in model the pipeline needs are
/// checked: missing ones raise one :class:`~deepfaune_rs.WeightsNotFoundError` naming them all
/// and the ``deepfaune-rs models fetch ...`` command that gets them; ``fetch=True`` fetches
/// them first (nothing is ever downloaded otherwise).
///
/// ``device``, ``precision`` and ``cache_dir`` are :class:`Detector`'s, for the detector named
/// here and the classifier (``precision="int8"``: every model's int8 variant, made by
/// ``deepfaune-rs models quantize ID``); ``intra_threads`` is the classifier's ONNX Runtime
/// thread count (0 = one per core).
#[pyclass(module = "deepfaune_rs", name = "Pipeline")]
pub struct PyPipeline {
    pub(super) pipeline: Pipeline,
    /// The detector (None: the pipeline only classifies given boxes).
    detector: Option<Py<PyDetector>>,
    /// The language as given (an alias stays the alias).
    language: String,
}

#[pymethods]
impl PyPipeline {
    #[new]
    #[pyo3(signature = (detector = None, classifier = PathBuf::from(DEFAULT_CLASSIFIER), *,
                        detector_mode = Some(DEFAULT_DETECTOR_MODE.to_string()), classifier_manifest = None,
                        score_threshold = None, maxlag_s = 10.0, language = "en", disabled_classes = Vec::new(),
                        bird_head = false, batch_size = 1, fetch = false, class_thresholds = None, device = "cpu",
                        precision = "fp32", intra_threads = 0, cache_dir = None, threshold = None),
           text_signature = "(detector=None, classifier='deepfaune-v15', *, detector_mode='DFbsMDS', \
                             classifier_manifest=None, score_threshold=None, maxlag_s=10.0, language='en', \
                             disabled_classes=(), bird_head=False, batch_size=1, fetch=False, \
                             class_thresholds=None, device='cpu', precision='fp32', intra_threads=0, \
                             cache_dir=None, threshold=None)")]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        detector: Option<Bound<'_, PyAny>>,
        classifier: PathBuf,
        detector_mode: Option<String>,
        classifier_manifest: Option<PathBuf>,
        score_threshold: Option<f32>,
        maxlag_s: f64,
        language: &str,
        disabled_classes: Vec<String>,
        bird_head: bool,
        batch_size: usize,
        fetch: bool,
        class_thresholds: Option<BTreeMap<String, f32>>,
        device: &str,
        precision: &str,
        intra_threads: usize,
        cache_dir: Option<PathBuf>,
        threshold: Option<f32>,
    ) -> PyResult<Self> {
        let score_threshold = renamed(
            py,
            "score_threshold",
            score_threshold,
            "threshold",
            threshold,
        )?;
        check_language(language)?;
        let given = detector
            .as_ref()
            .map(|d| d.cast::<PyDetector>().map(|d| d.clone().unbind()).ok());
        if precision == "fp32" {
            // An int8 variant's own absence is the core's error.
            let needed = match (&given, &detector) {
                (Some(Some(_)), _) => pyo3::types::PyTuple::empty(py).into_any(),
                (_, Some(spec)) => detector_ids(py, Some(&spec.extract::<PathBuf>()?), None)?,
                (_, None) => {
                    let mode = detector_mode.as_deref().map(PathBuf::from);
                    detector_ids(py, mode.as_deref(), None)?
                }
            };
            require(py, &needed, Some(&classifier), bird_head, None, fetch)?;
        }
        let spec = match (&given, &detector) {
            (Some(Some(_)), _) => None,
            (_, Some(spec)) => Some(spec.clone()),
            (_, None) => detector_mode.map(|m| PyString::new(py, &m).into_any()),
        };
        let detector = match (given, spec) {
            (Some(Some(d)), _) => Some(d),
            (_, Some(spec)) => {
                let kwargs = PyDict::new(py);
                kwargs.set_item("device", device)?;
                kwargs.set_item("precision", precision)?;
                kwargs.set_item("cache_dir", &cache_dir)?;
                let d = py.get_type::<PyDetector>().call((spec,), Some(&kwargs))?;
                Some(d.cast_into::<PyDetector>()?.unbind())
            }
            (_, None) => None,
        };
        let mut opts = PipelineOptions {
            classifier: text(&classifier)?,
            classifier_manifest: classifier_manifest.as_deref().map(text).transpose()?,
            score_threshold,
            maxlag_s,
            language: language.to_string(),
            disabled_classes,
            class_thresholds: class_thresholds.unwrap_or_default(),
            bird_head,
            batch_size,
            ..PipelineOptions::default()
        };
        opts.validate().py()?;
        opts.session = session_options(intra_threads, false, device, precision, cache_dir)?;
        let detectors = detector.as_ref().map(|d| {
            let d = d.get();
            Detectors {
                set: d.detectors.clone(),
                run: d.run,
                threshold: d.threshold,
            }
        });
        let pipeline = py.detach(|| Pipeline::new(detectors, &opts)).py()?;
        Ok(PyPipeline {
            pipeline,
            detector,
            language: language.to_string(),
        })
    }

    /// The detector (a :class:`Detector`), or None when the pipeline only classifies given
    /// boxes.
    #[getter]
    fn detector(&self, py: Python<'_>) -> Option<Py<PyDetector>> {
        self.detector.as_ref().map(|d| d.clone_ref(py))
    }

    /// The language the pipeline was made with (as given: ``sv`` stays ``sv``).
    #[getter]
    fn language(&self) -> &str {
        &self.language
    }

    /// Class names of the classifier in the pipeline's language.
    #[getter]
    fn class_names(&self) -> Vec<String> {
        self.pipeline.class_names()
    }

    /// Runs over image and video files and folders (walked recursively). Images go through
    /// DeepFaune's image path (sequences per folder); each video is sampled (12 frames, see
    /// :func:`deepfaune_rs.video.frame_indices`) and judged as one sequence of its own
    /// (:attr:`PipelineResult.videos`). Unreadable files are listed in
    /// :attr:`PipelineResult.failures` and treated as empty, as DeepFaune does; so is every
    /// other file the walk meets (``.webp``, ``.txt``...: stage ``walk``, kind
    /// ``unsupported``), except the run's own files: ``checkpoint``, ``outputs`` (the files
    /// the results will be written to) and their sidecars (``NAME.checkpoint``,
    /// ``NAME.corrections.jsonl``).
    ///
    /// ``checkpoint``: a file where every processed image is recorded as soon as it is done. If
    /// the run is interrupted (crash, sleep, Ctrl-C), calling ``run`` again with the same
    /// checkpoint skips the images already done and gives the same results as one uninterrupted
    /// run. Videos are recorded in the same file and skipped the same way. A
    /// checkpoint written with other models, settings or boxes is refused
    /// (``InvalidArgumentError``).
    ///
    /// ``detections``: someone else's boxes as the detection step, nothing is detected again (the
    /// pipeline needs no detector). A MegaDetector batch file (MegaDetector v5/v1000,
    /// SpeciesNet's MegaDetector-format output, ours), read with
    /// :func:`~deepfaune_rs.read_megadetector_json` (its relative paths are relative to
    /// ``inputs``, one folder, or by default to the JSON file's folder), or results that
    /// function or :meth:`Detector.detect` already gave. The images it lists are classified in
    /// its order, put into sequences and exported as usual, with progress, ``checkpoint`` and
    /// failures; ``inputs`` is not walked.
    ///
    /// ``json_rules`` (with ``detections``): ``"corrected"`` (default for a file) keeps the
    /// package's rules, ``"deepfaune"`` reproduces DeepFaune 1.4.1's ``PredictorJSON`` exactly.
    /// Differences, ``"deepfaune"`` against ``"corrected"``: the most confident box of any
    /// category decides the image (a more confident person box makes it ``human`` and the
    /// animal is not classified; corrected: the best animal box is classified); ``count``
    /// counts boxes of every category, ``humancount`` is 0 (corrected: animals and people
    /// apart); no EXIF orientation (corrected: boxes and crops on the upright image); rows the
    /// file marks as failed are dropped (corrected: failure rows); category ids are read as
    /// numbers, not by name. Every quirk is listed in
    /// :func:`~deepfaune_rs.read_megadetector_json`. Results read already keep their rules;
    /// asking for other rules is an error.
    #[pyo3(signature = (inputs = None, progress = ProgressArg(None), keep_embeddings = true, checkpoint = None,
                        detections = None, json_rules = None, outputs = Vec::new()),
           text_signature = "($self, inputs=None, progress=True, keep_embeddings=True, checkpoint=None, \
                             detections=None, json_rules=None, outputs=())")]
    #[allow(clippy::too_many_arguments)] // Python's keyword arguments, one each
    fn run(
        &self,
        py: Python<'_>,
        inputs: Option<Inputs>,
        progress: ProgressArg,
        keep_embeddings: bool,
        checkpoint: Option<PathBuf>,
        detections: Option<Bound<'_, PyAny>>,
        json_rules: Option<String>,
        outputs: Vec<PathBuf>,
    ) -> PyResult<PyPipelineResults> {
        let progress = progress.callback(py, "deepfaune")?;
        let run = RunArgs {
            progress,
            keep_embeddings,
            checkpoint,
        };
        if let Some(detections) = detections {
            return self.run_detections(py, inputs, &detections, json_rules.as_deref(), run);
        }
        if json_rules.is_some() {
            return Err(argument_error("json_rules applies to detections= only"));
        }
        let Some(inputs) = inputs else {
            return Err(argument_error("give the files or folders to run over"));
        };
        // The core walks the folders lazily (results start at once), runs the images, then the
        // videos (given ones first), reading their frames through video.sample_video (PyAV),
        // and records both in the checkpoint.
        let root = inputs.single_folder();
        self.run_core(py, &inputs.0, run, None, outputs, root)
    }

    /// The results of the single run over `plan`'s inputs, from the parts of its units
    /// (`parts[u]`: `PipelineResults.to_part()` of a run over unit `u`'s files, on any
    /// machine): rows in that run's order, then its sequences, labels and table.
    #[pyo3(signature = (plan, parts, root = None))]
    fn merge(
        &self,
        py: Python<'_>,
        plan: &PyRunPlan,
        parts: Vec<String>,
        root: Option<PathBuf>,
    ) -> PyResult<PyPipelineResults> {
        let (finished, threshold) = py
            .detach(|| {
                let models = wait_for(|| self.pipeline.try_models(false))?;
                Ok::<_, PyErr>(models.merge(&plan.plan, &parts))
            })?
            .py()?;
        self.results(py, finished, threshold, None, root)
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

/// The arguments of a run that pass through to the core unchanged.
struct RunArgs {
    progress: Option<Py<PyAny>>,
    keep_embeddings: bool,
    checkpoint: Option<PathBuf>,
}

impl PyPipeline {
    /// A run over `paths` (walked), or over the boxes of `detections` (`paths`: the folder
    /// their files are relative to, or none).
    fn run_core(
        &self,
        py: Python<'_>,
        paths: &[PathBuf],
        run: RunArgs,
        detections: Option<&Bound<'_, PyDetectionResults>>,
        outputs: Vec<PathBuf>,
        root: Option<PathBuf>,
    ) -> PyResult<PyPipelineResults> {
        let RunArgs {
            progress,
            keep_embeddings,
            checkpoint,
        } = run;
        let slot = Mutex::new(None);
        let given = detections.map(|g| g.get());
        let imported = given.map(|g| g.to_imported());
        let result = py.detach(|| {
            let mut models =
                wait_for(|| self.pipeline.try_models(imported.is_none()))?.writing_to(outputs);
            let mut hook = progress_hook(&progress, &slot);
            let mut sampler = super::video::python_sampler(&slot);
            let checkpoint = checkpoint.as_deref();
            Ok::<_, PyErr>(match &imported {
                Some(imported) => {
                    models.run_imported(imported, paths, keep_embeddings, checkpoint, &mut hook)
                }
                None => models.run(
                    paths,
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
        self.results(py, finished, threshold, given, root)
    }

    /// `run(detections=...)`: someone else's boxes (a MegaDetector file or results already
    /// read) as the detection step.
    fn run_detections(
        &self,
        py: Python<'_>,
        inputs: Option<Inputs>,
        detections: &Bound<'_, PyAny>,
        json_rules: Option<&str>,
        run: RunArgs,
    ) -> PyResult<PyPipelineResults> {
        if let Some(rules) = json_rules {
            if JsonRules::parse(rules).is_err() {
                return Err(argument_error(format!(
                    "json_rules '{rules}': use 'corrected' or 'deepfaune'"
                )));
            }
        }
        let mut root = match inputs {
            None => None,
            Some(inputs) => Some(inputs.single_folder().ok_or_else(|| {
                argument_error(
                    "with detections=, inputs is the one folder the file's paths are relative to",
                )
            })?),
        };
        let result = match detections.cast::<PyDetectionResults>() {
            Ok(given) => {
                let rules = given.get().imported.map_or("corrected", |(r, _)| r.name());
                if let Some(asked) = json_rules.filter(|&r| r != rules) {
                    return Err(argument_error(format!(
                        "these detections were decided with the '{rules}' rules; read the file \
                         again with read_megadetector_json(..., rules='{asked}')"
                    )));
                }
                root = root.or_else(|| given.get().root.clone());
                given.clone()
            }
            Err(_) => {
                let path: PathBuf = detections.extract()?;
                let rules = json_rules.unwrap_or("corrected");
                let read = read_megadetector_json(py, path, root, None, rules, None)?;
                root = read.root.clone();
                Bound::new(py, read)?
            }
        };
        let paths: Vec<PathBuf> = root.iter().cloned().collect();
        self.run_core(py, &paths, run, Some(&result), Vec::new(), root)
    }

    /// The Python results of a finished run whose detector threshold is `threshold`.
    fn results(
        &self,
        py: Python<'_>,
        finished: Finished,
        threshold: f32,
        detections: Option<&PyDetectionResults>,
        root: Option<PathBuf>,
    ) -> PyResult<PyPipelineResults> {
        let Finished {
            mut results,
            decided,
            videos,
        } = finished;
        let detection = std::mem::take(&mut results.detection);
        let mut detections_out = PyDetectionResults::new(detection, threshold);
        detections_out.root = root.clone();
        if let Some(given) = detections {
            detections_out.imported = given.imported;
            detections_out.classifications = given.classifications.permute_boxes(&decided.boxes);
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
            root,
        )
    }
}

/// Refuses a language code that is neither DeepFaune's nor an alias of one.
fn check_language(language: &str) -> PyResult<()> {
    if LANGUAGES.contains(&language) || LANGUAGE_ALIASES.iter().any(|(a, _)| *a == language) {
        return Ok(());
    }
    let aliases: Vec<String> = LANGUAGE_ALIASES
        .iter()
        .map(|(a, c)| format!("{a} for {c}"))
        .collect();
    Err(argument_error(format!(
        "unknown language '{language}': use one of {} ({})",
        LANGUAGES.join(", "),
        aliases.join(", ")
    )))
}

/// Results of :meth:`Pipeline.run`, one row per image, plus :attr:`videos`.
///
/// One row order for everything: row ``i`` of every column and array (:attr:`paths`,
/// :attr:`logits`, :attr:`embeddings`, :attr:`detections`...) is row ``i`` of :meth:`to_pandas`
/// and of the CSV, DeepFaune's order (by sequence number, then file name); the videos' rows
/// follow the images'. So ``t = res.to_pandas().iloc[:len(res)]`` then
/// ``t["logits"] = list(res.logits)`` puts each image's logits on its own row.
///
/// Image columns: :attr:`seqnum`, :attr:`predictionbase`, :attr:`scorebase`, :attr:`prediction`,
/// :attr:`score`, :attr:`top1`, :attr:`logits` ``[n, classes]`` and :attr:`embeddings`
/// ``[n, d]`` (read-only numpy views, no copies), plus :attr:`detections` (boxes, counts,
/// failures). ``len()`` counts images; each video is one :class:`VideoRecord` and one row of the
/// table (:meth:`to_pandas`, :meth:`to_csv`), numbered as a sequence of its own after the images'
/// sequences.
#[pyclass(module = "deepfaune_rs", name = "PipelineResult", frozen)]
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
    /// The folder run (one folder given), or the one a MegaDetector file's paths are relative
    /// to: exports make paths relative to it.
    root: Option<PathBuf>,
    /// `videos` as Python objects, made on first use.
    video_views: PyOnceLock<Py<PyList>>,
}

impl PyPipelineResults {
    #[allow(clippy::too_many_arguments)]
    fn new(
        detections: Py<PyDetectionResults>,
        res: PipelineResults,
        decided: Decided,
        manifest: ClassifierManifest,
        settings: DecisionSettings,
        journal: Vec<Correction>,
        video_records: Vec<VideoRecord>,
        root: Option<PathBuf>,
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
            root,
            video_views: PyOnceLock::new(),
        })
    }

    /// The run's core results for the command line (`crate::cli::run::Outcome::decided`): the
    /// rows with their detections, the video records, the manifest, the decision settings, the
    /// detector threshold and the exports' root folder.
    #[allow(clippy::type_complexity)]
    pub(super) fn core_parts(
        &self,
    ) -> (
        PipelineResults,
        Vec<VideoRecord>,
        ClassifierManifest,
        DecisionSettings,
        f32,
        Option<PathBuf>,
    ) {
        let det = self.detections.get();
        let mut res = self.res.clone();
        res.detection = det.res.clone();
        (
            res,
            self.video_records.clone(),
            self.manifest.clone(),
            self.settings.clone(),
            det.threshold,
            self.root.clone(),
        )
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
        detections.root = self.root.clone();
        detections.classifications = given.classifications.permute_boxes(&decided.boxes);
        PyPipelineResults::new(
            Py::new(py, detections)?,
            res,
            decided,
            self.manifest.clone(),
            settings,
            journal,
            video_records,
            self.root.clone(),
        )
    }
}

#[pymethods]
impl PyPipelineResults {
    fn __len__(&self) -> usize {
        self.seqnum.len()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        // The five most frequent predictions (images and videos), ties in first-seen order.
        let mut counts: Vec<(&str, usize)> = Vec::new();
        let labels = self.text.prediction.iter().map(String::as_str);
        for label in labels.chain(self.videos.iter().map(|v| v.prediction.as_str())) {
            match counts.iter_mut().find(|(l, _)| *l == label) {
                Some((_, n)) => *n += 1,
                None => counts.push((label, 1)),
            }
        }
        counts.sort_by_key(|c| std::cmp::Reverse(c.1));
        counts.truncate(5);
        let top = PyList::new(py, counts)?.repr()?;
        let n_seq = self.seqnum.iter().copied().max().unwrap_or(0);
        Ok(format!(
            "<PipelineResult {} images, {n_seq} sequences, {} videos, {top}>",
            self.seqnum.len(),
            self.videos.len()
        ))
    }

    /// The folder run (one folder given), or the one a MegaDetector file's paths are relative
    /// to; None otherwise. Exports make paths relative to it.
    #[getter]
    fn root(&self) -> Option<&std::ffi::OsStr> {
        self.root.as_deref().map(|p| p.as_os_str())
    }

    /// One record per video (:class:`~deepfaune_rs.videos.VideoRecord`, the core's,
    /// corrections applied), in the table's order.
    #[getter]
    fn videos(&self, py: Python<'_>) -> PyResult<Py<PyList>> {
        let list = self.video_views.get_or_try_init(py, || {
            let views = self
                .videos
                .iter()
                .map(|v| Py::new(py, PyVideoRecord(v.clone())))
                .collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, views).map(Bound::unbind)
        })?;
        Ok(list.clone_ref(py))
    }

    /// File path of each image.
    #[getter]
    fn paths<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(
            py,
            self.detections
                .get()
                .res
                .paths
                .iter()
                .map(|p| p.as_os_str()),
        )
    }
    /// EXIF DateTimeOriginal or None.
    #[getter]
    fn dates(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(self.detections.bind(py).getattr("dates")?.unbind())
    }
    /// Animal boxes per image.
    #[getter]
    fn count(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(self.detections.bind(py).getattr("count")?.unbind())
    }
    /// Person boxes per image.
    #[getter]
    fn humancount(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(self.detections.bind(py).getattr("humancount")?.unbind())
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

    /// The images decided again from the stored logits, boxes and dates, with other
    /// settings, without running any model: the same answers as a new run with those settings
    /// (the core's sequence step runs on the stored rows). ``None`` keeps the run's setting.
    /// ``class_thresholds`` (``{class: threshold}``) replace ``score_threshold`` for those
    /// classes (``threshold``: its old name, deprecated);
    /// ``disabled_classes`` replaces the run's list; ``preset`` names a saved list of classes
    /// to switch off (:func:`deepfaune_rs.review.save_preset`: the species absent from a
    /// region). Corrections applied so far stay applied. Videos keep their answers.
    #[pyo3(signature = (score_threshold = None, class_thresholds = None, disabled_classes = None, maxlag_s = None,
                        preset = None, threshold = None))]
    #[allow(clippy::too_many_arguments)] // Python's keyword arguments, one each
    fn redecide(
        &self,
        py: Python<'_>,
        score_threshold: Option<f32>,
        class_thresholds: Option<BTreeMap<String, f32>>,
        disabled_classes: Option<Vec<String>>,
        maxlag_s: Option<f64>,
        preset: Option<String>,
        threshold: Option<f32>,
    ) -> PyResult<PyPipelineResults> {
        let score_threshold = renamed(
            py,
            "score_threshold",
            score_threshold,
            "threshold",
            threshold,
        )?;
        let disabled_classes = match preset {
            None => disabled_classes,
            Some(_) if disabled_classes.is_some() => {
                return Err(argument_error("give disabled_classes or preset, not both"))
            }
            // Presets are the review page's files (`deepfaune_rs.review`).
            Some(p) => Some(
                py.import("deepfaune_rs.review")?
                    .getattr("load_preset")?
                    .call1((p,))?
                    .extract()?,
            ),
        };
        let changes = Redecide {
            score_threshold,
            class_thresholds,
            disabled_classes,
            maxlag_s,
        };
        let settings = self.settings.redecide(&self.manifest, changes).py()?;
        self.again(py, settings, self.journal.clone())
    }

    /// These results with the corrections journal at ``path`` applied (what the review page
    /// writes: ``<results>.corrections.jsonl``; a missing file changes nothing). A relabelled
    /// image takes the label with score 1.0 (as DeepFaune's GUI does) in every output: the
    /// table, CSV/XLSX, sorting, MegaDetector JSON (the label alone, probability 1.0) and
    /// Camtrap DP (``classificationMethod`` ``human``, ``classifiedBy``,
    /// ``classificationTimestamp``). A relabelled video takes the label with score 1.0 as
    /// its prediction and top1 (:attr:`videos` too) in every output, Camtrap DP's
    /// ``classificationMethod`` ``human`` included. The results themselves are never
    /// edited.
    fn apply_corrections(&self, py: Python<'_>, path: PathBuf) -> PyResult<PyPipelineResults> {
        self.with_corrections(py, path)
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
        table_columns(py, &self.table, !self.videos.is_empty())
    }

    /// DeepFaune's table: filename, date, seqnum, predictionbase, scorebase, prediction, score,
    /// top1, count, humancount; sorted by seqnum then filename. Then ``status``: ``ok``, or
    /// ``failed: <reason>`` for a file that could not be processed (DeepFaune's columns call it
    /// ``empty``: never delete "empty" rows without looking at this column). With videos, one
    /// row per video (its prediction in both the base and sequence columns, counts = most boxes
    /// in a frame) and two more columns: ``media_type`` (image/video) and ``keyframe`` (frame
    /// number).
    fn to_pandas<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let t = self.table(py)?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("columns", t.keys())?;
        py.import("pandas")?
            .getattr("DataFrame")?
            .call((t,), Some(&kwargs))
    }

    /// Writes DeepFaune's table as XLSX (needs ``openpyxl``), atomically. Text is always
    /// stored as text cells, never as formulas (whatever it starts with); numbers stay numbers.
    /// ``csv_safe=True`` also puts a single quote in front of text a spreadsheet would run as a
    /// formula once copied or exported back to CSV (see :meth:`to_csv`).
    #[pyo3(signature = (path, csv_safe = false))]
    fn to_excel(&self, py: Python<'_>, path: PathBuf, csv_safe: bool) -> PyResult<()> {
        py.import("deepfaune_rs._outputs")?
            .getattr("write_excel")?
            .call1((self.table(py)?, path, csv_safe))?;
        Ok(())
    }

    /// Writes the images' crop embeddings to an ``.npz`` file (atomically): ``filename`` (the
    /// image paths, in the table's order) and ``embedding`` (``[n, d]``, zeros where no animal was
    /// classified). Needs ``keep_embeddings=True`` in :meth:`Pipeline.run`.
    fn save_embeddings(slf: Bound<'_, Self>, path: PathBuf) -> PyResult<()> {
        let py = slf.py();
        if slf.get().res.embedding_dim == 0 {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "the run did not keep embeddings (Pipeline.run(keep_embeddings=True))",
            ));
        }
        let paths = slf.get().paths(py)?;
        let embeddings = Self::embeddings(slf)?;
        py.import("deepfaune_rs._outputs")?
            .getattr("save_embeddings")?
            .call1((path, paths, embeddings))?;
        Ok(())
    }

    /// Starts the review page on 127.0.0.1 (see :func:`deepfaune_rs.review.review`);
    /// corrections go to ``<results>.corrections.jsonl``. Returns the running server
    /// (``.url``, ``.stop()``).
    #[pyo3(signature = (results = None, **kwargs))]
    fn review<'py>(
        slf: Bound<'py, Self>,
        results: Option<Bound<'py, PyAny>>,
        kwargs: Option<Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        notebook(&slf, "review")?.call((&slf, results), kwargs.as_ref())
    }

    /// One image (index, file name or path) with its boxes and labels, for a notebook.
    #[pyo3(signature = (which, width = 640))]
    fn show<'py>(
        slf: Bound<'py, Self>,
        which: Bound<'py, PyAny>,
        width: u32,
    ) -> PyResult<Bound<'py, PyAny>> {
        let kwargs = PyDict::new(slf.py());
        kwargs.set_item("width", width)?;
        notebook(&slf, "show")?.call((&slf, which), Some(&kwargs))
    }

    /// Up to ``n`` images predicted ``prediction`` (or of ``kind=``) with boxes and labels.
    #[pyo3(signature = (prediction = None, n = 12, **kwargs))]
    fn gallery<'py>(
        slf: Bound<'py, Self>,
        prediction: Option<String>,
        n: usize,
        kwargs: Option<Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let kwargs = kwargs.unwrap_or_else(|| PyDict::new(slf.py()));
        kwargs.set_item("n", n)?;
        notebook(&slf, "gallery")?.call((&slf, prediction), Some(&kwargs))
    }

    /// A notebook's summary: counts per prediction and a few pictures.
    fn _repr_html_<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        notebook(&slf, "summary_html")?.call1((&slf,))
    }

    /// The rows as a part of a distributed run (`Pipeline.merge`): a header line, then one
    /// checkpoint record per row, floats as their exact bits.
    fn to_part(&self, py: Python<'_>) -> PyResult<String> {
        let det = self.detections.get();
        py.detach(|| encode_part(&self.res, &det.res, det.threshold))
            .py()
    }

    /// Writes DeepFaune's CSV (atomically); see :meth:`to_pandas` for videos.
    ///
    /// ``csv_safe=True`` puts a single quote in front of text cells a spreadsheet would run as
    /// a formula (starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return), e.g. an
    /// image named ``=HYPERLINK(...).jpg``. DeepFaune writes names unchanged, hence the
    /// default.
    #[pyo3(signature = (path, csv_safe = false))]
    fn to_csv(&self, py: Python<'_>, path: PathBuf, csv_safe: bool) -> PyResult<()> {
        py.detach(|| write_results_csv(&path, &self.table, csv_safe))
            .py()
    }

    /// Writes MegaDetector batch JSON 1.6 (atomically) with the species: the classifier's
    /// classes as ``classification_categories`` (English names) and, on the classified box of
    /// each animal image, ``classifications``: the top 3 ``[class id, probability]`` by softmax of
    /// the image's logits at the classifier's single-image temperature (DeepFaune 1.5: 1.12,
    /// 1.4: 1.10), switched-off classes left out. A video's entry has ``frame_rate``,
    /// ``frames_processed`` and a ``frame_number`` on each detection. File names are relative
    /// to ``root`` (default: the folder that was run).
    #[pyo3(signature = (path, root = None))]
    fn to_megadetector_json(
        &self,
        py: Python<'_>,
        path: PathBuf,
        root: Option<PathBuf>,
    ) -> PyResult<()> {
        let root = root.or_else(|| self.root.clone());
        let det = self.detections.get();
        let human = human_classes(&self.reviewed);
        let cls = classifications(&self.manifest, &self.res, &self.settings, &human);
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

    /// Writes a Camtrap DP 1.0.2 package (``datapackage.json``, ``deployments.csv``,
    /// ``media.csv``, ``observations.csv``) into ``folder``, each file atomically.
    ///
    /// Sequences become events (``eventID`` ``seq<seqnum>``, ``observationLevel`` event, the
    /// sequence's prediction and the most animals seen in one image); every detection box is a
    /// media-level observation (bbox as fractions of the image), the classified one with the
    /// species. Scientific names come from the classifier manifest's ``scientific_names``.
    ///
    /// Each readable video (:attr:`videos`) is a media row (``fileMediatype`` ``video/mp4``,
    /// ...; ``timestamp`` its ``creation_time``, read as the camera's clock like an EXIF date)
    /// and an event of its own, numbered as in :meth:`table`: from its timestamp to its timestamp
    /// plus its whole seconds, with the video's prediction and counts; its keyframe is a
    /// media-level observation with the deciding box (as fractions of the frame), the species,
    /// and the frame number in ``observationComments``. Videos that could not be read are left
    /// out like unreadable images.
    ///
    /// ``deployments``: a CSV file (or rows) with ``deploymentID`` and any Camtrap DP deployment
    /// columns (``latitude``, ``longitude``, ``deploymentStart`` with its UTC offset, ...). An
    /// image or video belongs to the deployment named by its folder (path relative to the run's
    /// folder, or the folder's name), unless ``deployment_of`` maps that folder to another id.
    /// ``timezone`` (``"+02:00"``) is the camera clocks' zone; by default each deployment's
    /// ``deploymentStart`` offset, else UTC. ``undated``: ``"exclude"`` images without EXIF date
    /// and videos without ``creation_time`` (the standard requires a timestamp) or date them by
    /// file ``"mtime"``. ``metadata``: package fields (``title``, ``contributors``, ``licenses``,
    /// and ``project`` with ``title``, ``samplingDesign``, ``captureMethod``, which Camtrap DP
    /// requires).
    ///
    /// Nothing is invented: what the media cannot tell (coordinates, project facts) and is not
    /// given is left out and reported. Returns those warnings (also emitted with
    /// :func:`warnings.warn`).
    #[pyo3(signature = (folder, deployments = None, *, deployment_of = None, timezone = None,
                        undated = "exclude", metadata = None, root = None))]
    #[allow(clippy::too_many_arguments)]
    fn to_camtrap_dp(
        &self,
        py: Python<'_>,
        folder: PathBuf,
        deployments: Option<Bound<'_, PyAny>>,
        deployment_of: Option<BTreeMap<String, String>>,
        timezone: Option<String>,
        undated: &str,
        metadata: Option<Bound<'_, PyAny>>,
        root: Option<PathBuf>,
    ) -> PyResult<Vec<String>> {
        let root = root.or_else(|| self.root.clone());
        let deployments = match deployments {
            None => None,
            Some(d) => Some(deployment_rows(&d)?),
        };
        // The metadata as JSON text (any mapping Python's json module writes).
        let metadata: Option<String> = match metadata {
            None => None,
            Some(m) => {
                let dict = py.get_type::<PyDict>().call1((m,))?;
                Some(
                    py.import("json")?
                        .getattr("dumps")?
                        .call1((dict,))?
                        .extract()?,
                )
            }
        };
        let bad = |m: String| to_pyerr(Error::InvalidArgument(m));
        let timezone = match timezone {
            Some(t) => Some(UtcOffset::from_argument(&t).py()?),
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
        let found = py.detach(|| write_camtrap_dp(&src, &folder, &opts)).py()?;
        let category = py.get_type::<pyo3::exceptions::PyUserWarning>();
        for w in &found {
            let message = std::ffi::CString::new(format!("Camtrap DP: {w}"))?;
            PyErr::warn(py, category.as_any(), &message, 1)?;
        }
        Ok(found)
    }

    /// Sorts the images into ``<dest>/deepfaune_<timestamp>/<prediction>/`` as DeepFaune does
    /// (``mode``: copy, move or symlink; name clashes get ``_2``, ``_3``; nothing is overwritten).
    /// Returns ``{"root", "placed": [(src, dst)], "failures": [(src, reason)]}``. Ctrl-C stops
    /// it between two files (``KeyboardInterrupt``; the files already placed stay, each whole).
    /// Moving a symbolic link places a link to the same file (a relative link stays valid).
    #[pyo3(signature = (dest, mode = "copy", blur_humans = false, timestamp = None))]
    fn sort_into<'py>(
        &self,
        py: Python<'py>,
        dest: PathBuf,
        mode: &str,
        blur_humans: bool,
        timestamp: Option<String>,
    ) -> PyResult<Bound<'py, PyDict>> {
        // DeepFaune's folder name: the local time (Python's clock, which knows the zone).
        let timestamp = match timestamp {
            Some(t) => t,
            None => py
                .import("datetime")?
                .getattr("datetime")?
                .call_method0("now")?
                .call_method1("strftime", ("%d-%m-%Y_%H-%M-%S",))?
                .extract()?,
        };
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
            timestamp: Some(timestamp),
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
        let out = PyDict::new(py);
        out.set_item("root", report.root)?;
        out.set_item("placed", placed)?;
        out.set_item("failures", failed)?;
        Ok(out)
    }
}

/// DeepFaune's table `t` as columns (a dict of lists), with the videos' columns
/// (`media_type`, `keyframe`) when `videos`.
pub(super) fn table_columns<'py>(
    py: Python<'py>,
    t: &[ResultRow],
    videos: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
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
    if videos {
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

/// A function of `deepfaune_rs.review`, the notebook and web glue (Python's).
fn notebook<'py>(slf: &Bound<'py, PyPipelineResults>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    slf.py().import("deepfaune_rs.review")?.getattr(name)
}

/// Camtrap DP deployment rows given as a CSV file (path-like) or as rows (mappings, their keys
/// and values taken as text).
fn deployment_rows(given: &Bound<'_, PyAny>) -> PyResult<Vec<BTreeMap<String, String>>> {
    let py = given.py();
    let path_like = py.import("os")?.getattr("PathLike")?;
    if given.is_instance_of::<PyString>() || given.is_instance(&path_like)? {
        let path: PathBuf = given.extract()?;
        return py.detach(|| read_deployments(&path)).py();
    }
    given
        .try_iter()?
        .map(|row| {
            let row = row?;
            let items = row.call_method0("items")?;
            items
                .try_iter()?
                .map(|kv| {
                    let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = kv?.extract()?;
                    Ok((k.str()?.to_string(), v.str()?.to_string()))
                })
                .collect()
        })
        .collect()
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
    m.add("DEFAULT_CLASSIFIER", DEFAULT_CLASSIFIER)?;
    m.add("DEFAULT_DETECTOR_MODE", DEFAULT_DETECTOR_MODE)?;
    m.add("LANGUAGES", pyo3::types::PyTuple::new(m.py(), LANGUAGES)?)?;
    m.add(
        "LANGUAGE_ALIASES",
        LANGUAGE_ALIASES.into_iter().collect::<BTreeMap<_, _>>(),
    )?;
    m.add_function(wrap_pyfunction!(checkpoint_is_complete, m)?)?;
    m.add_function(wrap_pyfunction!(run_of_checkpoint, m)?)?;
    m.add_class::<PyPipeline>()?;
    m.add_class::<PyRunPlan>()?;
    m.add_class::<PyPipelineResults>()?;
    Ok(())
}
