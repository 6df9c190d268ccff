//! The converter's bindings: a checkpoint read into Python objects (and back), and the ViT
//! builders' ONNX bytes. Types only: the reading and building are the core's (`crate::convert`).

use std::path::PathBuf;

use numpy::ndarray::Ix3;
use numpy::{IntoPyArray, PyArray2, PyArray3, PyReadonlyArray3};
use pyo3::exceptions::{PyAttributeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use super::errors::IntoPyResult;
use crate::convert::pickle::{DType, Tensor};
use crate::convert::vit::{self, BACKBONES};
use crate::convert::{load_checkpoint, ConvertError, Graph, Object, Value};

/// Stands in for a pickled object of a class that is not imported (nothing of it ran).
///
/// ``classname`` is ``module.qualname``; ``args`` what the constructor was given; ``state``
/// what the pickle set on the object (for a ``torch.nn.Module``, its ``__dict__``:
/// ``_parameters``, ``_buffers``, ``_modules`` and plain attributes); ``items`` what APPENDS /
/// SETITEMS gave a list or dict subclass. Attributes read through to ``state``.
#[pyclass(module = "deepfaune_rs._core", name = "StandIn", frozen)]
pub struct StandIn {
    module: String,
    qualname: String,
    #[pyo3(get)]
    args: Py<PyTuple>,
    #[pyo3(get)]
    state: Py<PyAny>,
    #[pyo3(get)]
    items: Py<PyList>,
}

#[pymethods]
impl StandIn {
    /// ``module.qualname`` of the class stood in for.
    #[getter]
    fn classname(&self) -> String {
        format!("{}.{}", self.module, self.qualname)
    }

    /// The last part of the class's qualified name.
    #[getter]
    fn name(&self) -> &str {
        self.qualname.rsplit('.').next().unwrap_or(&self.qualname)
    }

    /// ``state[key]`` when the state is a dict holding ``key``, else ``default``.
    #[pyo3(signature = (key, default=None))]
    fn get(&self, py: Python<'_>, key: &str, default: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        let state = self.state.bind(py);
        if let Ok(d) = state.cast::<PyDict>() {
            if let Some(v) = d.get_item(key)? {
                return Ok(v.unbind());
            }
        }
        Ok(default.unwrap_or_else(|| py.None()))
    }

    fn __getattr__(&self, py: Python<'_>, key: &str) -> PyResult<Py<PyAny>> {
        if let Ok(d) = self.state.bind(py).cast::<PyDict>() {
            if let Some(v) = d.get_item(key)? {
                return Ok(v.unbind());
            }
        }
        Err(PyAttributeError::new_err(format!(
            "{}.{} stand-in has no attribute '{key}'",
            self.module, self.qualname
        )))
    }

    fn __repr__(&self) -> String {
        format!("<stand-in for {}.{}>", self.module, self.qualname)
    }
}

/// A tensor as a numpy array of its own dtype (bfloat16 widened to float32), copied.
fn tensor_to_py<'py>(py: Python<'py>, t: &Tensor) -> PyResult<Bound<'py, PyAny>> {
    let np = py.import("numpy")?;
    let (bytes, dtype) = match t.dtype() {
        DType::BF16 => (
            t.to_f32().iter().flat_map(|v| v.to_le_bytes()).collect(),
            "<f4",
        ),
        d => (t.to_le_bytes(), numpy_le(d)),
    };
    let flat = np.call_method1("frombuffer", (PyBytes::new(py, &bytes), dtype))?;
    flat.call_method1("reshape", (PyTuple::new(py, t.shape())?,))
}

fn numpy_le(d: DType) -> &'static str {
    match d {
        DType::F64 => "<f8",
        DType::F32 | DType::BF16 => "<f4",
        DType::F16 => "<f2",
        DType::I64 => "<i8",
        DType::I32 => "<i4",
        DType::I16 => "<i2",
        DType::I8 => "i1",
        DType::U8 => "u1",
        DType::Bool => "?",
    }
}

fn to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::None => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Int(i) => i.into_pyobject(py)?.into_any(),
        Value::Float(f) => PyFloat::new(py, *f).into_any(),
        Value::Str(s) => PyString::new(py, s).into_any(),
        Value::Bytes(b) => PyBytes::new(py, b).into_any(),
        Value::List(items) => PyList::new(py, seq_to_py(py, items)?)?.into_any(),
        Value::Tuple(items) => PyTuple::new(py, seq_to_py(py, items)?)?.into_any(),
        Value::Dict(items) => {
            let d = PyDict::new(py);
            for (k, x) in items {
                d.set_item(to_py(py, k)?, to_py(py, x)?)?;
            }
            d.into_any()
        }
        Value::Tensor(t) => tensor_to_py(py, t)?,
        Value::Object(o) => Bound::new(
            py,
            StandIn {
                module: o.module.clone(),
                qualname: o.qualname.clone(),
                args: PyTuple::new(py, seq_to_py(py, &o.args)?)?.unbind(),
                state: to_py(py, &o.state)?.unbind(),
                items: PyList::new(py, seq_to_py(py, &o.items)?)?.unbind(),
            },
        )?
        .into_any(),
    })
}

fn seq_to_py<'py>(py: Python<'py>, items: &[Value]) -> PyResult<Vec<Bound<'py, PyAny>>> {
    items.iter().map(|x| to_py(py, x)).collect()
}

fn dtype_of(name: &str) -> Option<DType> {
    Some(match name {
        "float64" => DType::F64,
        "float32" => DType::F32,
        "float16" => DType::F16,
        "int64" => DType::I64,
        "int32" => DType::I32,
        "int16" => DType::I16,
        "int8" => DType::I8,
        "uint8" => DType::U8,
        "bool" => DType::Bool,
        _ => return None,
    })
}

/// Python objects (as [`read_checkpoint`] gives them, possibly changed) back to a [`Value`].
pub(crate) fn from_py(obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<Value> {
    if depth > 200 {
        return Err(PyTypeError::new_err("checkpoint object nested too deeply"));
    }
    let d = depth + 1;
    let seq = |it: Bound<'_, PyAny>| -> PyResult<Vec<Value>> {
        it.try_iter()?.map(|x| from_py(&x?, d)).collect()
    };
    if obj.is_none() {
        return Ok(Value::None);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        return Ok(Value::Int(obj.extract()?));
    }
    if obj.is_instance_of::<PyFloat>() {
        return Ok(Value::Float(obj.extract()?));
    }
    if obj.is_instance_of::<PyString>() {
        return Ok(Value::Str(obj.extract()?));
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Value::Bytes(b.as_bytes().to_vec()));
    }
    if let Ok(dict) = obj.cast::<PyDict>() {
        return dict
            .iter()
            .map(|(k, v)| Ok((from_py(&k, d)?, from_py(&v, d)?)))
            .collect::<PyResult<_>>()
            .map(Value::Dict);
    }
    if obj.is_instance_of::<PyList>() {
        return Ok(Value::List(seq(obj.clone())?));
    }
    if obj.is_instance_of::<PyTuple>() {
        return Ok(Value::Tuple(seq(obj.clone())?));
    }
    if let Ok(s) = obj.cast::<StandIn>() {
        let s = s.get();
        let py = obj.py();
        return Ok(Value::Object(Box::new(Object {
            module: s.module.clone(),
            qualname: s.qualname.clone(),
            args: seq(s.args.bind(py).clone().into_any())?,
            state: from_py(s.state.bind(py), d)?,
            items: seq(s.items.bind(py).clone().into_any())?,
        })));
    }
    let np = obj.py().import("numpy")?;
    if obj.is_instance(&np.getattr("ndarray")?)? {
        let name: String = obj.getattr("dtype")?.getattr("name")?.extract()?;
        let dtype = dtype_of(&name).ok_or_else(|| {
            PyTypeError::new_err(format!("arrays of {name} are not checkpoint tensors"))
        })?;
        let shape: Vec<usize> = obj.getattr("shape")?.extract()?;
        let contiguous = np.call_method1("ascontiguousarray", (obj,))?;
        let le = contiguous.call_method1("astype", (numpy_le(dtype),))?;
        let bytes: Vec<u8> = le.call_method0("tobytes")?.extract()?;
        return Tensor::from_le_bytes(dtype, shape, bytes)
            .map(Value::Tensor)
            .map_err(|e| PyTypeError::new_err(e.to_string()));
    }
    if obj.is_instance(&np.getattr("generic")?)? {
        return from_py(&obj.call_method0("item")?, d);
    }
    Err(PyTypeError::new_err(format!(
        "a {} is not part of a checkpoint",
        obj.get_type().name()?
    )))
}

/// Reads a ``torch.save`` file without torch and without running its pickle: dicts, lists,
/// tuples, numpy arrays (copies; bfloat16 widened to float32) and :class:`StandIn` objects for
/// the classes of torch, torchvision, timm, ultralytics... Anything else the pickle asks for
/// (``os.system``, ``builtins.eval``...) makes the file refused with ``CheckpointError``.
#[pyfunction]
fn read_checkpoint(py: Python<'_>, path: PathBuf) -> PyResult<Py<PyAny>> {
    let value = py.detach(|| load_checkpoint(&path)).py()?;
    Ok(to_py(py, &value)?.unbind())
}

fn model_bytes<'py>(
    py: Python<'py>,
    graph: Graph,
    metadata: Vec<(String, String)>,
) -> Bound<'py, PyBytes> {
    let meta: Vec<(&str, &str)> = metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let bytes = py.detach(|| graph.to_model_bytes(vit::VIT_OPSET, &meta));
    PyBytes::new(py, &bytes)
}

fn size_arg(size: Option<i64>) -> PyResult<Option<u32>> {
    size.map(|s| {
        u32::try_from(s).map_err(|_| {
            super::errors::to_pyerr(
                ConvertError::Build(format!("input size must be a positive integer, not {s}"))
                    .into(),
            )
        })
    })
    .transpose()
}

/// The serialized ONNX model of a DeepFaune classifier checkpoint (``{"args": {"backbone",
/// "num_classes"}, "state_dict": {"base_model.*": arrays}}``, as :func:`read_checkpoint` gives
/// it): input ``input`` [batch, 3, size, size], outputs ``logits`` and ``embedding``. ``size``
/// defaults to DeepFaune's (182 for DINOv2, 224 for DINOv3); ``metadata`` goes to the model's
/// ``metadata_props``.
#[pyfunction]
#[pyo3(signature = (ckpt, size=None, metadata=Vec::new()))]
fn build_classifier<'py>(
    py: Python<'py>,
    ckpt: &Bound<'py, PyAny>,
    size: Option<i64>,
    metadata: Vec<(String, String)>,
) -> PyResult<Bound<'py, PyBytes>> {
    let value = from_py(ckpt, 0)?;
    let size = size_arg(size)?;
    let graph = py.detach(|| vit::build_classifier(&value, size)).py()?;
    Ok(model_bytes(py, graph, metadata))
}

/// The serialized ONNX model of a DeepFaune bird head (a state dict of ``bird_model.*``):
/// input ``embedding`` [batch, D], output ``logits`` [batch, groups].
#[pyfunction]
#[pyo3(signature = (ckpt, metadata=Vec::new()))]
fn build_bird_head<'py>(
    py: Python<'py>,
    ckpt: &Bound<'py, PyAny>,
    metadata: Vec<(String, String)>,
) -> PyResult<Bound<'py, PyBytes>> {
    let value = from_py(ckpt, 0)?;
    let graph = py.detach(|| vit::build_bird_head(&value)).py()?;
    Ok(model_bytes(py, graph, metadata))
}

/// Reads the checkpoint at ``path`` and builds its ONNX model in one step (nothing crosses
/// into Python but the bytes): ``kind`` is ``classifier`` or ``bird_head``.
#[pyfunction]
#[pyo3(signature = (path, kind, size=None, metadata=Vec::new()))]
fn build_model_file<'py>(
    py: Python<'py>,
    path: PathBuf,
    kind: &str,
    size: Option<i64>,
    metadata: Vec<(String, String)>,
) -> PyResult<Bound<'py, PyBytes>> {
    let size = size_arg(size)?;
    let graph = py
        .detach(|| {
            let value = load_checkpoint(&path)?;
            match kind {
                "classifier" => vit::build_classifier(&value, size),
                "bird_head" => vit::build_bird_head(&value),
                other => Err(ConvertError::Build(format!(
                    "no core builder for a {other} checkpoint"
                ))),
            }
        })
        .py()?;
    Ok(model_bytes(py, graph, metadata))
}

/// Resamples a float32 position grid [H, W, C] to ``new_size`` (h, w) as timm's
/// ``resample_abs_pos_embed`` (torch's antialiased bicubic, torch's weights to the bit).
#[pyfunction]
fn resample_pos_embed<'py>(
    py: Python<'py>,
    grid: PyReadonlyArray3<'py, f32>,
    new_size: (usize, usize),
) -> Bound<'py, PyArray3<f32>> {
    let grid = grid.as_array().to_owned().into_dimensionality::<Ix3>();
    let grid = grid.expect("a 3-D array");
    py.detach(|| vit::resample_pos_embed(&grid, new_size))
        .into_pyarray(py)
}

/// The rotary tables: `(sin, cos)`.
type SinCos<'py> = (Bound<'py, PyArray2<f32>>, Bound<'py, PyArray2<f32>>);

/// ``(sin, cos)``, each [H*W, head_dim] float32: timm's ``RotaryEmbeddingDinoV3`` tables for a
/// grid of patches (rotate-half layout).
#[pyfunction]
#[pyo3(signature = (grid, head_dim, temperature=100.0))]
fn dinov3_rope_tables<'py>(
    py: Python<'py>,
    grid: (usize, usize),
    head_dim: usize,
    temperature: f64,
) -> PyResult<SinCos<'py>> {
    let (sin, cos) = vit::dinov3_rope_tables(grid, head_dim, temperature).py()?;
    Ok((sin.into_pyarray(py), cos.into_pyarray(py)))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<StandIn>()?;
    m.add_function(wrap_pyfunction!(read_checkpoint, m)?)?;
    m.add_function(wrap_pyfunction!(build_classifier, m)?)?;
    m.add_function(wrap_pyfunction!(build_bird_head, m)?)?;
    m.add_function(wrap_pyfunction!(build_model_file, m)?)?;
    m.add_function(wrap_pyfunction!(resample_pos_embed, m)?)?;
    m.add_function(wrap_pyfunction!(dinov3_rope_tables, m)?)?;
    let backbones = PyDict::new(py);
    for (name, b) in BACKBONES {
        let d = PyDict::new(py);
        d.set_item("family", b.family.name())?;
        d.set_item("default_size", b.default_size)?;
        d.set_item("ln_eps", f64::from(b.ln_eps))?;
        d.set_item("rope_temperature", b.rope_temperature)?;
        backbones.set_item(*name, d)?;
    }
    m.add("VIT_BACKBONES", backbones)?;
    m.add("VIT_HEAD_DIM", vit::HEAD_DIM)?;
    Ok(())
}
