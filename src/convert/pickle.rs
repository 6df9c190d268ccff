//! Reads PyTorch checkpoints (`torch.save` zip files) without torch and without running the
//! pickle's code.
//!
//! A `.pt` file is a zip archive holding `<prefix>/data.pkl` (a pickle of the saved object) and
//! one member per tensor storage (`<prefix>/data/<key>`, stored uncompressed). The pickle refers to
//! the storages by key; tensors are rebuilt by `torch._utils._rebuild_tensor_v2(storage, offset,
//! size, stride, ...)` and parameters by `_rebuild_parameter(tensor, ...)`.
//!
//! The unpickler here is restricted:
//!
//! - those few torch functions are interpreted here; tensors view a read-only memory map of the
//!   file (no copy until they are converted);
//! - `collections.OrderedDict` and a handful of harmless builtins (`set`, `slice`, ...) become
//!   plain values;
//! - any other class or function from the namespaces a model checkpoint uses ([`STUB_NAMESPACES`]:
//!   `torch`, `torchvision`, `timm`, `ultralytics`, YOLOv5's `models` and `utils`, `numpy`, ...)
//!   is stood in for by an [`Object`]: never imported, never called; it records the constructor
//!   arguments and the pickled state, so ultralytics' `DetectionModel` objects and the torchvision
//!   `transform` of DeepFaune 1.5's classifier can be read;
//! - anything else (`os.system`, `builtins.eval`, `subprocess.Popen`, ...) makes the whole file
//!   refused with [`ConvertError::Checkpoint`] before any of it runs.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use ndarray::{ArrayD, IxDyn};

use super::archive::{Archive, FileBytes, Shared};
use super::{ConvertError, Result};

/// Top-level packages whose classes may appear in a model checkpoint; they are stood in for.
pub const STUB_NAMESPACES: &[&str] = &[
    "torch",
    "torchvision",
    "timm",
    "ultralytics",
    "models", // YOLOv5's repository layout (MegaDetector v5 / redwood)
    "utils",
    "yolov5",
    "numpy",
    "pathlib",
    "argparse",
    "types",
    "datetime",
    "enum",
    "PIL",
];

/// A value of the checkpoint's object tree.
#[derive(Debug, Clone)]
pub enum Value {
    /// `None`.
    None,
    /// `bool`.
    Bool(bool),
    /// `int` (within 64 bits).
    Int(i64),
    /// `float`.
    Float(f64),
    /// `str`.
    Str(String),
    /// `bytes` / `bytearray`.
    Bytes(Vec<u8>),
    /// `list` (and `set` / `frozenset`, in pickle order).
    List(Vec<Value>),
    /// `tuple` (and `torch.Size`, `slice`, `range`: their arguments).
    Tuple(Vec<Value>),
    /// `dict` / `OrderedDict`, insertion order kept.
    Dict(Vec<(Value, Value)>),
    /// A tensor or `nn.Parameter`.
    Tensor(Tensor),
    /// A stand-in for an object of a class that is not imported.
    Object(Box<Object>),
}

/// Stands in for a pickled object of a class that is not imported.
#[derive(Debug, Clone)]
pub struct Object {
    /// The class's module (`torch.nn.modules.conv`).
    pub module: String,
    /// The class's qualified name (`Conv2d`).
    pub qualname: String,
    /// What the constructor was given.
    pub args: Vec<Value>,
    /// What the pickle set on the object (for a `torch.nn.Module`, its `__dict__`: `_parameters`,
    /// `_buffers`, `_modules` and plain attributes); `(dict, slots)` pairs are merged.
    pub state: Value,
    /// Items given by APPENDS (a list subclass) or SETITEMS (a dict subclass: `(key, value)`
    /// tuples).
    pub items: Vec<Value>,
}

impl Object {
    /// The last part of the qualified name (`Conv2d`).
    pub fn name(&self) -> &str {
        self.qualname.rsplit('.').next().unwrap_or(&self.qualname)
    }

    /// `module.qualname`.
    pub fn classname(&self) -> String {
        format!("{}.{}", self.module, self.qualname)
    }

    /// A key of the state, when it is a dict.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.state.get(key)
    }
}

impl Value {
    /// The value of a `str` key of a dict, or of an object's state.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(items) => items
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            Value::Object(o) => o.get(key),
            _ => None,
        }
    }

    /// The text of a `str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// An `int` (or a `bool`, as Python counts it).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    /// An `int` or a `float` as a float.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The items of a list or tuple.
    pub fn as_seq(&self) -> Option<&[Value]> {
        match self {
            Value::List(v) | Value::Tuple(v) => Some(v),
            _ => None,
        }
    }

    /// A stand-in object.
    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    /// A tensor.
    pub fn as_tensor(&self) -> Option<&Tensor> {
        match self {
            Value::Tensor(t) => Some(t),
            _ => None,
        }
    }

    /// The `(key, value)` pairs of a dict, in insertion order.
    pub fn dict_items(&self) -> Option<&[(Value, Value)]> {
        match self {
            Value::Dict(items) => Some(items),
            _ => None,
        }
    }
}

/// The element type of a storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    /// `DoubleStorage`.
    F64,
    /// `FloatStorage`.
    F32,
    /// `HalfStorage` (IEEE half).
    F16,
    /// `BFloat16Storage`.
    BF16,
    /// `LongStorage`.
    I64,
    /// `IntStorage`.
    I32,
    /// `ShortStorage`.
    I16,
    /// `CharStorage`.
    I8,
    /// `ByteStorage` and `UntypedStorage`.
    U8,
    /// `BoolStorage`.
    Bool,
}

impl DType {
    fn from_storage(name: &str) -> Option<DType> {
        Some(match name {
            "DoubleStorage" => DType::F64,
            "FloatStorage" => DType::F32,
            "HalfStorage" => DType::F16,
            "BFloat16Storage" => DType::BF16,
            "LongStorage" => DType::I64,
            "IntStorage" => DType::I32,
            "ShortStorage" => DType::I16,
            "CharStorage" => DType::I8,
            "ByteStorage" | "UntypedStorage" => DType::U8,
            "BoolStorage" => DType::Bool,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }

    /// numpy's name of the type (bf16 has none: it is read as float32).
    pub fn numpy_name(self) -> &'static str {
        match self {
            DType::F64 => "float64",
            DType::F32 | DType::BF16 => "float32",
            DType::F16 => "float16",
            DType::I64 => "int64",
            DType::I32 => "int32",
            DType::I16 => "int16",
            DType::I8 => "int8",
            DType::U8 => "uint8",
            DType::Bool => "bool",
        }
    }
}

/// A storage of the archive, typed by the pickle.
#[derive(Debug)]
struct Storage {
    bytes: SharedBytes,
    dtype: DType,
    numel: usize,
    big_endian: bool,
}

struct SharedBytes(Shared);

impl std::fmt::Debug for SharedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bytes", self.0.len())
    }
}

/// A tensor: a view (offset, shape, strides in elements) of a storage shared with the other
/// tensors of the file, which stays memory-mapped until converted.
#[derive(Debug, Clone)]
pub struct Tensor {
    storage: Arc<Storage>,
    offset: usize,
    shape: Vec<usize>,
    strides: Vec<usize>,
}

impl Tensor {
    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// A contiguous tensor of `shape` over `bytes` (little-endian elements of `dtype`).
    pub fn from_le_bytes(dtype: DType, shape: Vec<usize>, bytes: Vec<u8>) -> Result<Tensor> {
        let numel: usize = shape.iter().product();
        if bytes.len() != numel * dtype.size() {
            return Err(bad(&format!(
                "{} bytes for a tensor of shape {shape:?}",
                bytes.len()
            )));
        }
        let mut strides = vec![1usize; shape.len()];
        for d in (0..shape.len().saturating_sub(1)).rev() {
            strides[d] = strides[d + 1] * shape[d + 1];
        }
        let storage = Storage {
            bytes: SharedBytes(Shared::Owned(Arc::new(bytes))),
            dtype,
            numel,
            big_endian: false,
        };
        Ok(Tensor {
            storage: Arc::new(storage),
            offset: 0,
            shape,
            strides,
        })
    }

    /// The storage's element type.
    pub fn dtype(&self) -> DType {
        self.storage.dtype
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the tensor's bytes are the file's own (memory-mapped), not a copy.
    pub fn is_mapped(&self) -> bool {
        matches!(&self.storage.bytes.0, Shared::File { file, .. } if file.is_mapped())
    }

    /// The storage indices of the elements, in row-major order.
    fn indices(&self) -> impl Iterator<Item = usize> + '_ {
        let n = self.len();
        let nd = self.shape.len();
        let mut idx = vec![0usize; nd];
        let mut pos = self.offset;
        (0..n).map(move |i| {
            if i > 0 {
                for d in (0..nd).rev() {
                    idx[d] += 1;
                    pos += self.strides[d];
                    if idx[d] < self.shape[d] {
                        break;
                    }
                    pos -= self.strides[d] * idx[d];
                    idx[d] = 0;
                }
            }
            pos
        })
    }

    /// The element at storage index `i`, as the raw bytes in native order.
    fn raw<const N: usize>(&self, i: usize) -> [u8; N] {
        let b: &[u8] = &self.storage.bytes.0;
        let mut out: [u8; N] = b[i * N..i * N + N].try_into().unwrap();
        if self.storage.big_endian {
            out.reverse();
        }
        out
    }

    fn map<T>(&self, f: impl Fn(&Tensor, usize) -> T) -> ArrayD<T> {
        let data: Vec<T> = self.indices().map(|i| f(self, i)).collect();
        ArrayD::from_shape_vec(IxDyn(&self.shape), data).expect("shape matches the elements")
    }

    fn elem_f64(&self, i: usize) -> f64 {
        match self.storage.dtype {
            DType::F64 => f64::from_le_bytes(self.raw::<8>(i)),
            DType::F32 => f64::from(f32::from_le_bytes(self.raw::<4>(i))),
            DType::F16 => f64::from(half::f16::from_le_bytes(self.raw::<2>(i)).to_f32()),
            DType::BF16 => f64::from(bf16_to_f32(u16::from_le_bytes(self.raw::<2>(i)))),
            DType::I64 => i64::from_le_bytes(self.raw::<8>(i)) as f64,
            DType::I32 => f64::from(i32::from_le_bytes(self.raw::<4>(i))),
            DType::I16 => f64::from(i16::from_le_bytes(self.raw::<2>(i))),
            DType::I8 => f64::from(self.raw::<1>(i)[0] as i8),
            DType::U8 | DType::Bool => f64::from(self.raw::<1>(i)[0]),
        }
    }

    fn elem_f32(&self, i: usize) -> f32 {
        match self.storage.dtype {
            DType::F32 => f32::from_le_bytes(self.raw::<4>(i)),
            DType::F16 => half::f16::from_le_bytes(self.raw::<2>(i)).to_f32(),
            DType::BF16 => bf16_to_f32(u16::from_le_bytes(self.raw::<2>(i))),
            _ => self.elem_f64(i) as f32,
        }
    }

    fn elem_i64(&self, i: usize) -> i64 {
        match self.storage.dtype {
            DType::I64 => i64::from_le_bytes(self.raw::<8>(i)),
            DType::I32 => i64::from(i32::from_le_bytes(self.raw::<4>(i))),
            DType::I16 => i64::from(i16::from_le_bytes(self.raw::<2>(i))),
            DType::I8 => i64::from(self.raw::<1>(i)[0] as i8),
            DType::U8 | DType::Bool => i64::from(self.raw::<1>(i)[0]),
            // numpy's float-to-int cast: toward zero.
            _ => self.elem_f64(i) as i64,
        }
    }

    /// The values as float32 (bf16 widened exactly, wider types rounded).
    pub fn to_f32(&self) -> ArrayD<f32> {
        self.map(Tensor::elem_f32)
    }

    /// The values as float64.
    pub fn to_f64(&self) -> ArrayD<f64> {
        self.map(Tensor::elem_f64)
    }

    /// The values as int64 (floats truncated toward zero).
    pub fn to_i64(&self) -> ArrayD<i64> {
        self.map(Tensor::elem_i64)
    }

    /// The elements' bytes, row-major and little-endian, in the storage's own type (bf16 as its
    /// 16-bit patterns): what a numpy array of [`DType::numpy_name`] holds, bf16 apart.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        let size = self.storage.dtype.size();
        let bytes: &[u8] = &self.storage.bytes.0;
        let mut out = Vec::with_capacity(self.len() * size);
        for i in self.indices() {
            let mut e = bytes[i * size..(i + 1) * size].to_vec();
            if self.storage.big_endian {
                e.reverse();
            }
            out.extend_from_slice(&e);
        }
        out
    }
}

/// bfloat16 bits widened to float32 (exact).
fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

// ---------------------------------------------------------------------------------------------
// The unpickler's own values: containers shared through the memo, frozen into `Value` at the end.

type Shared_<T> = Rc<RefCell<T>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    RebuildTensor,
    RebuildParameter,
    RebuildFromTypeV2,
    TorchSize,
    Set,
    Slice,
    Range,
    Complex,
    Bytes,
    Tuple,
    List,
    Dict,
    CodecsEncode,
}

#[derive(Debug, Default)]
struct PDict {
    items: Vec<(PV, PV)>,
    index: HashMap<Key, usize>,
}

#[derive(Debug, Hash, PartialEq, Eq)]
enum Key {
    Int(i64),
    Str(String),
}

fn key_of(v: &PV) -> Option<Key> {
    match v {
        PV::Int(i) => Some(Key::Int(*i)),
        PV::Bool(b) => Some(Key::Int(i64::from(*b))),
        PV::Str(s) => Some(Key::Str(s.clone())),
        _ => None,
    }
}

impl PDict {
    fn insert(&mut self, k: PV, v: PV) {
        match key_of(&k) {
            Some(key) => match self.index.get(&key) {
                Some(&i) => self.items[i].1 = v,
                None => {
                    self.index.insert(key, self.items.len());
                    self.items.push((k, v));
                }
            },
            None => self.items.push((k, v)),
        }
    }
}

#[derive(Debug)]
struct PObj {
    module: String,
    qualname: String,
    args: Vec<PV>,
    state: PV,
    items: Vec<PV>,
}

#[derive(Debug, Clone)]
enum PV {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Shared_<Vec<PV>>),
    Tuple(Rc<Vec<PV>>),
    Dict(Shared_<PDict>),
    Tensor(Tensor),
    Object(Shared_<PObj>),
    /// A class of a stub namespace (not yet instantiated).
    Class(Rc<(String, String)>),
    Func(Func),
    Storage(Arc<Storage>),
}

impl PV {
    fn kind(&self) -> &'static str {
        match self {
            PV::None => "None",
            PV::Bool(_) => "bool",
            PV::Int(_) => "int",
            PV::Float(_) => "float",
            PV::Str(_) => "str",
            PV::Bytes(_) => "bytes",
            PV::List(_) => "list",
            PV::Tuple(_) => "tuple",
            PV::Dict(_) => "dict",
            PV::Tensor(_) => "tensor",
            PV::Object(_) => "object",
            PV::Class(_) => "class",
            PV::Func(_) => "function",
            PV::Storage(_) => "storage",
        }
    }

    fn seq(&self) -> Option<Vec<PV>> {
        match self {
            PV::Tuple(t) => Some(t.to_vec()),
            PV::List(l) => Some(l.borrow().clone()),
            _ => None,
        }
    }
}

/// Depth past which a nested (or self-referencing) structure is refused.
const MAX_DEPTH: usize = 500;

fn freeze(v: &PV, depth: usize) -> Result<Value> {
    if depth > MAX_DEPTH {
        return Err(bad("nested too deeply (or refers to itself)"));
    }
    let d = depth + 1;
    let all = |items: &[PV]| {
        items
            .iter()
            .map(|x| freeze(x, d))
            .collect::<Result<Vec<_>>>()
    };
    Ok(match v {
        PV::None => Value::None,
        PV::Bool(b) => Value::Bool(*b),
        PV::Int(i) => Value::Int(*i),
        PV::Float(f) => Value::Float(*f),
        PV::Str(s) => Value::Str(s.clone()),
        PV::Bytes(b) => Value::Bytes(b.clone()),
        PV::List(l) => Value::List(all(&l.borrow())?),
        PV::Tuple(t) => Value::Tuple(all(t)?),
        PV::Dict(m) => Value::Dict(
            m.borrow()
                .items
                .iter()
                .map(|(k, x)| Ok((freeze(k, d)?, freeze(x, d)?)))
                .collect::<Result<_>>()?,
        ),
        PV::Tensor(t) => Value::Tensor(t.clone()),
        PV::Object(o) => {
            let o = o.borrow();
            Value::Object(Box::new(Object {
                module: o.module.clone(),
                qualname: o.qualname.clone(),
                args: all(&o.args)?,
                state: freeze(&o.state, d)?,
                items: all(&o.items)?,
            }))
        }
        // A class or function left in the tree (e.g. a pickled reference to a class): its name.
        PV::Class(c) => Value::Str(format!("{}.{}", c.0, c.1)),
        PV::Func(f) => Value::Str(format!("{f:?}")),
        PV::Storage(_) => return Err(bad("an untyped storage outside a tensor")),
    })
}

fn bad(what: &str) -> ConvertError {
    ConvertError::Checkpoint(format!("damaged checkpoint pickle: {what}"))
}

fn refuse(module: &str, name: &str) -> ConvertError {
    ConvertError::Checkpoint(format!(
        "the checkpoint's pickle asks for {module}.{name}, which a model checkpoint never needs; \
         refused without running anything"
    ))
}

/// What `GLOBAL module name` stands for, or the refusal.
fn find_class(module: &str, name: &str) -> Result<PV> {
    // Protocol-2 pickles name some modules as Python 2 did (pickle's fix_imports).
    let module = match module {
        "__builtin__" => "builtins",
        "copy_reg" => "copyreg",
        m => m,
    };
    let f = match (module, name) {
        ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor" | "_rebuild_tensor_v3") => {
            Func::RebuildTensor
        }
        ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
            Func::RebuildParameter
        }
        ("torch._tensor", "_rebuild_from_type_v2") => Func::RebuildFromTypeV2,
        ("torch", "Size") => Func::TorchSize,
        ("builtins", "set" | "frozenset") => Func::Set,
        ("builtins", "slice") => Func::Slice,
        ("builtins", "range") => Func::Range,
        ("builtins", "complex") => Func::Complex,
        ("builtins", "bytearray" | "bytes") => Func::Bytes,
        ("builtins", "tuple") => Func::Tuple,
        ("builtins", "list") => Func::List,
        ("builtins", "dict") | ("collections", "OrderedDict") => Func::Dict,
        // Protocol-2 pickles write bytes as _codecs.encode(text, "latin1").
        ("_codecs", "encode") => Func::CodecsEncode,
        _ => {
            let top = module.split('.').next().unwrap_or(module);
            if STUB_NAMESPACES.contains(&top) {
                return Ok(PV::Class(Rc::new((module.to_string(), name.to_string()))));
            }
            return Err(refuse(module, name));
        }
    };
    Ok(PV::Func(f))
}

fn int_arg(v: Option<&PV>, what: &str) -> Result<i64> {
    match v {
        Some(PV::Int(i)) => Ok(*i),
        Some(PV::Bool(b)) => Ok(i64::from(*b)),
        _ => Err(bad(&format!("{what} is not an integer"))),
    }
}

fn usizes(v: Option<&PV>, what: &str) -> Result<Vec<usize>> {
    let items = v
        .and_then(PV::seq)
        .ok_or_else(|| bad(&format!("tensor {what} is not a tuple")))?;
    items
        .iter()
        .map(|x| {
            usize::try_from(int_arg(Some(x), what)?)
                .map_err(|_| bad(&format!("negative tensor {what}")))
        })
        .collect()
}

fn rebuild_tensor(args: &[PV]) -> Result<PV> {
    let Some(PV::Storage(storage)) = args.first() else {
        return Err(bad("a tensor rebuilt from something that is not a storage"));
    };
    let offset = int_arg(args.get(1), "tensor offset")?;
    let shape = usizes(args.get(2), "size")?;
    let strides = usizes(args.get(3), "stride")?;
    if strides.len() != shape.len() {
        return Err(bad("tensor size and stride differ in length"));
    }
    let count = shape
        .iter()
        .try_fold(1usize, |a, &n| a.checked_mul(n))
        .ok_or_else(|| bad("tensor size overflows"))?;
    let fits = if count == 0 {
        true
    } else {
        let last = shape.iter().zip(&strides).try_fold(offset, |a, (&n, &s)| {
            a.checked_add(i64::try_from((n - 1).checked_mul(s)?).ok()?)
        });
        offset >= 0 && last.is_some_and(|l| (l as u64) < storage.numel as u64)
    };
    if !fits {
        return Err(ConvertError::Checkpoint(format!(
            "tensor of size {shape:?} at offset {offset} does not fit its storage ({})",
            storage.numel
        )));
    }
    Ok(PV::Tensor(Tensor {
        storage: Arc::clone(storage),
        offset: if count == 0 { 0 } else { offset as usize },
        shape,
        strides,
    }))
}

/// Loads the typed storages of the archive as the pickle asks for them.
struct Storages<'a> {
    archive: &'a Archive,
    prefix: String,
    big_endian: bool,
    loaded: HashMap<String, Arc<Storage>>,
}

impl Storages<'_> {
    fn load(&mut self, pid: &PV) -> Result<PV> {
        let items = pid.seq().unwrap_or_default();
        if items.len() < 5 || !matches!(&items[0], PV::Str(s) if s == "storage") {
            return Err(ConvertError::Checkpoint(format!(
                "unknown persistent id ({})",
                pid.kind()
            )));
        }
        let type_name = match &items[1] {
            PV::Class(c) => c.1.clone(),
            PV::Str(s) => s.clone(),
            other => other.kind().to_string(),
        };
        let dtype = DType::from_storage(&type_name).ok_or_else(|| {
            ConvertError::Checkpoint(format!("unsupported storage type {type_name}"))
        })?;
        let key = match &items[2] {
            PV::Str(s) => s.clone(),
            PV::Int(i) => i.to_string(),
            _ => return Err(bad("storage key is not a string")),
        };
        let numel = usize::try_from(int_arg(items.get(4), "storage size")?)
            .map_err(|_| bad("negative storage size"))?;
        if let Some(s) = self.loaded.get(&key) {
            if s.dtype == dtype && s.numel >= numel {
                return Ok(PV::Storage(Arc::clone(s)));
            }
        }
        let name = format!("{}data/{key}", self.prefix);
        let member = self.archive.member(&name).ok_or_else(|| {
            ConvertError::Checkpoint(format!("storage {key} missing from the archive"))
        })?;
        let nbytes = numel
            .checked_mul(dtype.size())
            .ok_or_else(|| bad("storage size overflows"))?;
        if member.size < nbytes as u64 {
            return Err(ConvertError::Checkpoint(format!(
                "storage {key} holds {} bytes, {nbytes} needed",
                member.size
            )));
        }
        let bytes = self.archive.read(member)?;
        if bytes.len() < nbytes {
            return Err(ConvertError::Checkpoint(format!(
                "storage {key} runs past the end of file"
            )));
        }
        let storage = Arc::new(Storage {
            bytes: SharedBytes(bytes),
            dtype,
            numel,
            big_endian: self.big_endian,
        });
        self.loaded.insert(key, Arc::clone(&storage));
        Ok(PV::Storage(storage))
    }
}

/// Calls `f(*args)` for REDUCE and NEWOBJ.
fn call(f: &PV, args: Vec<PV>) -> Result<PV> {
    match f {
        PV::Class(c) => Ok(PV::Object(Rc::new(RefCell::new(PObj {
            module: c.0.clone(),
            qualname: c.1.clone(),
            args,
            state: PV::None,
            items: Vec::new(),
        })))),
        PV::Func(func) => call_func(*func, args),
        other => Err(bad(&format!("calls a {}", other.kind()))),
    }
}

fn call_func(func: Func, args: Vec<PV>) -> Result<PV> {
    let first_seq = |args: &[PV]| -> Result<Vec<PV>> {
        match args.first() {
            None => Ok(Vec::new()),
            Some(PV::Dict(d)) => Ok(d.borrow().items.iter().map(|(k, _)| k.clone()).collect()),
            Some(v) => v
                .seq()
                .ok_or_else(|| bad(&format!("iterates a {}", v.kind()))),
        }
    };
    Ok(match func {
        Func::RebuildTensor => rebuild_tensor(&args)?,
        Func::RebuildParameter => args
            .into_iter()
            .next()
            .ok_or_else(|| bad("a parameter without data"))?,
        Func::RebuildFromTypeV2 => {
            let (Some(PV::Func(inner)), Some(inner_args)) = (args.first(), args.get(2)) else {
                return Err(bad("_rebuild_from_type_v2 without a function"));
            };
            if !matches!(inner, Func::RebuildTensor | Func::RebuildParameter) {
                return Err(ConvertError::Checkpoint(
                    "a tensor subclass is rebuilt by an unexpected function".into(),
                ));
            }
            let inner_args = inner_args
                .seq()
                .ok_or_else(|| bad("_rebuild_from_type_v2 arguments are not a tuple"))?;
            call_func(*inner, inner_args)?
        }
        Func::TorchSize | Func::Tuple => PV::Tuple(Rc::new(first_seq(&args)?)),
        Func::Set | Func::List => PV::List(Rc::new(RefCell::new(first_seq(&args)?))),
        Func::Slice | Func::Range | Func::Complex => PV::Tuple(Rc::new(args)),
        Func::Bytes => match args.first() {
            None => PV::Bytes(Vec::new()),
            Some(PV::Bytes(b)) => PV::Bytes(b.clone()),
            Some(PV::Str(s)) => PV::Bytes(s.as_bytes().to_vec()),
            Some(v) => {
                let items = v.seq().ok_or_else(|| bad("bytes() of a non-sequence"))?;
                PV::Bytes(
                    items
                        .iter()
                        .map(|x| u8::try_from(int_arg(Some(x), "byte")?).map_err(|_| bad("byte")))
                        .collect::<Result<_>>()?,
                )
            }
        },
        Func::Dict => {
            let mut d = PDict::default();
            match args.first() {
                None => {}
                Some(PV::Dict(src)) => {
                    for (k, v) in &src.borrow().items {
                        d.insert(k.clone(), v.clone());
                    }
                }
                Some(v) => {
                    for pair in v.seq().ok_or_else(|| bad("dict() of a non-sequence"))? {
                        match pair.seq().as_deref() {
                            Some([k, v]) => d.insert(k.clone(), v.clone()),
                            _ => return Err(bad("dict() item is not a pair")),
                        }
                    }
                }
            }
            PV::Dict(Rc::new(RefCell::new(d)))
        }
        Func::CodecsEncode => {
            let Some(PV::Str(text)) = args.first() else {
                return Err(bad("_codecs.encode of a non-string"));
            };
            match args.get(1) {
                Some(PV::Str(enc)) if enc == "latin1" || enc == "latin-1" => PV::Bytes(
                    text.chars()
                        .map(|c| u8::try_from(u32::from(c)).map_err(|_| bad("latin1 text")))
                        .collect::<Result<_>>()?,
                ),
                _ => PV::Bytes(text.as_bytes().to_vec()),
            }
        }
    })
}

/// BUILD: the state set on an object (`__setstate__`); on a dict or list it is an attribute
/// dict (an `OrderedDict`'s `_metadata`) that nothing reads.
fn build(obj: &PV, state: PV) -> Result<()> {
    if let PV::Object(o) = obj {
        // (dict, slots) pairs come from objects with __slots__.
        let merged = match &state {
            PV::Tuple(t) if t.len() == 2 && matches!(t[0], PV::Dict(_) | PV::None) => {
                let mut d = PDict::default();
                for part in t.iter() {
                    match part {
                        PV::Dict(m) => {
                            for (k, v) in &m.borrow().items {
                                d.insert(k.clone(), v.clone());
                            }
                        }
                        PV::None => {}
                        other => return Err(bad(&format!("object slots are a {}", other.kind()))),
                    }
                }
                PV::Dict(Rc::new(RefCell::new(d)))
            }
            _ => state,
        };
        o.borrow_mut().state = merged;
    }
    Ok(())
}

/// The bytes of a pickle, read opcode by opcode.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len());
        let end = end.ok_or_else(|| bad("pickle data was truncated"))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<usize> {
        Ok(usize::from(u16::from_le_bytes(
            self.take(2)?.try_into().unwrap(),
        )))
    }
    fn u32(&mut self) -> Result<usize> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()) as usize)
    }
    fn u64(&mut self) -> Result<usize> {
        usize::try_from(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
            .map_err(|_| bad("length too large"))
    }
    fn line(&mut self) -> Result<&'a str> {
        let rest = &self.b[self.at..];
        let n = rest
            .iter()
            .position(|&c| c == b'\n')
            .ok_or_else(|| bad("pickle data was truncated"))?;
        let s = std::str::from_utf8(&rest[..n]).map_err(|_| bad("a text line is not UTF-8"))?;
        self.at += n + 1;
        Ok(s)
    }
    fn utf8(&mut self, n: usize) -> Result<PV> {
        let s = std::str::from_utf8(self.take(n)?).map_err(|_| bad("a string is not UTF-8"))?;
        Ok(PV::Str(s.to_string()))
    }
}

fn long_from_le(bytes: &[u8]) -> Result<PV> {
    if bytes.is_empty() {
        return Ok(PV::Int(0));
    }
    if bytes.len() > 8 {
        // Wider than 64 bits only in sign extension.
        let sign = if bytes[bytes.len() - 1] & 0x80 != 0 {
            0xFF
        } else {
            0
        };
        if bytes[8..].iter().any(|&b| b != sign) || (bytes[7] & 0x80 != 0) != (sign == 0xFF) {
            return Err(bad("an integer wider than 64 bits"));
        }
        return long_from_le(&bytes[..8]);
    }
    let mut buf = if bytes[bytes.len() - 1] & 0x80 != 0 {
        [0xFF; 8]
    } else {
        [0; 8]
    };
    buf[..bytes.len()].copy_from_slice(bytes);
    Ok(PV::Int(i64::from_le_bytes(buf)))
}

/// Runs the restricted unpickler over `data`.
fn unpickle(data: &[u8], storages: &mut Storages<'_>) -> Result<Value> {
    let mut r = Reader { b: data, at: 0 };
    let mut stack: Vec<PV> = Vec::new();
    let mut marks: Vec<usize> = Vec::new();
    let mut memo: HashMap<usize, PV> = HashMap::new();
    let pop = |stack: &mut Vec<PV>| stack.pop().ok_or_else(|| bad("stack underflow"));
    let pop_mark = |stack: &mut Vec<PV>, marks: &mut Vec<usize>| -> Result<Vec<PV>> {
        let m = marks.pop().ok_or_else(|| bad("could not find MARK"))?;
        if m > stack.len() {
            return Err(bad("could not find MARK"));
        }
        Ok(stack.split_off(m))
    };
    loop {
        let op = r.u8().map_err(|_| bad("pickle data was truncated"))?;
        match op {
            0x80 => {
                r.u8()?; // PROTO
            }
            0x95 => {
                r.take(8)?; // FRAME
            }
            b'.' => {
                let top = pop(&mut stack)?;
                return freeze(&top, 0);
            }
            b'(' => marks.push(stack.len()),
            b'0' => {
                pop(&mut stack)?;
            }
            b'1' => {
                pop_mark(&mut stack, &mut marks)?;
            }
            b'2' => {
                let top = stack
                    .last()
                    .cloned()
                    .ok_or_else(|| bad("stack underflow"))?;
                stack.push(top);
            }
            b'N' => stack.push(PV::None),
            0x88 => stack.push(PV::Bool(true)),
            0x89 => stack.push(PV::Bool(false)),
            b'I' => {
                let s = r.line()?;
                stack.push(match s {
                    "00" => PV::Bool(false),
                    "01" => PV::Bool(true),
                    _ => PV::Int(s.parse().map_err(|_| bad("bad INT"))?),
                });
            }
            b'J' => {
                let v = i32::from_le_bytes(r.take(4)?.try_into().unwrap());
                stack.push(PV::Int(i64::from(v)));
            }
            b'K' => {
                let v = r.u8()?;
                stack.push(PV::Int(i64::from(v)));
            }
            b'M' => {
                let v = r.u16()?;
                stack.push(PV::Int(v as i64));
            }
            b'L' => {
                let s = r.line()?;
                let s = s.strip_suffix('L').unwrap_or(s);
                stack.push(PV::Int(s.parse().map_err(|_| bad("bad LONG"))?));
            }
            0x8a => {
                let n = usize::from(r.u8()?);
                let v = long_from_le(r.take(n)?)?;
                stack.push(v);
            }
            0x8b => {
                let n = r.u32()?;
                let v = long_from_le(r.take(n)?)?;
                stack.push(v);
            }
            b'F' => {
                let s = r.line()?;
                stack.push(PV::Float(s.trim().parse().map_err(|_| bad("bad FLOAT"))?));
            }
            b'G' => {
                let v = f64::from_be_bytes(r.take(8)?.try_into().unwrap());
                stack.push(PV::Float(v));
            }
            b'S' => {
                // STRING: a Python-2 repr'd str; kept as its text without the quotes.
                let s = r.line()?;
                let inner = s
                    .strip_prefix(['\'', '"'])
                    .and_then(|x| x.strip_suffix(['\'', '"']))
                    .ok_or_else(|| bad("bad STRING"))?;
                stack.push(PV::Str(inner.to_string()));
            }
            b'T' | b'U' => {
                let n = if op == b'T' {
                    r.u32()?
                } else {
                    usize::from(r.u8()?)
                };
                // BINSTRING: Python 2 str, decoded as pickle's default ASCII (latin1 here).
                let v = r.take(n)?.iter().map(|&c| char::from(c)).collect();
                stack.push(PV::Str(v));
            }
            b'V' => {
                let s = r.line()?;
                stack.push(PV::Str(s.to_string()));
            }
            b'X' => {
                let n = r.u32()?;
                let v = r.utf8(n)?;
                stack.push(v);
            }
            0x8c => {
                let n = usize::from(r.u8()?);
                let v = r.utf8(n)?;
                stack.push(v);
            }
            0x8d => {
                let n = r.u64()?;
                let v = r.utf8(n)?;
                stack.push(v);
            }
            b'B' | b'C' | 0x8e | 0x96 => {
                let n = match op {
                    b'B' => r.u32()?,
                    b'C' => usize::from(r.u8()?),
                    _ => r.u64()?,
                };
                stack.push(PV::Bytes(r.take(n)?.to_vec()));
            }
            b']' => stack.push(PV::List(Rc::new(RefCell::new(Vec::new())))),
            b')' => stack.push(PV::Tuple(Rc::new(Vec::new()))),
            b'}' => stack.push(PV::Dict(Rc::new(RefCell::new(PDict::default())))),
            0x8f => stack.push(PV::List(Rc::new(RefCell::new(Vec::new())))), // EMPTY_SET
            b'l' => {
                let items = pop_mark(&mut stack, &mut marks)?;
                stack.push(PV::List(Rc::new(RefCell::new(items))));
            }
            b't' | 0x91 => {
                // TUPLE, FROZENSET
                let items = pop_mark(&mut stack, &mut marks)?;
                stack.push(if op == b't' {
                    PV::Tuple(Rc::new(items))
                } else {
                    PV::List(Rc::new(RefCell::new(items)))
                });
            }
            0x85..=0x87 => {
                let n = usize::from(op - 0x84);
                if stack.len() < n {
                    return Err(bad("stack underflow"));
                }
                let items = stack.split_off(stack.len() - n);
                stack.push(PV::Tuple(Rc::new(items)));
            }
            b'd' => {
                let items = pop_mark(&mut stack, &mut marks)?;
                let mut d = PDict::default();
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    d.insert(k, v);
                }
                stack.push(PV::Dict(Rc::new(RefCell::new(d))));
            }
            b'a' | b'e' | 0x90 => {
                // APPEND, APPENDS, ADDITEMS
                let items = if op == b'a' {
                    vec![pop(&mut stack)?]
                } else {
                    pop_mark(&mut stack, &mut marks)?
                };
                match stack.last() {
                    Some(PV::List(l)) => l.borrow_mut().extend(items),
                    Some(PV::Object(o)) => o.borrow_mut().items.extend(items),
                    Some(other) => return Err(bad(&format!("appends to a {}", other.kind()))),
                    None => return Err(bad("stack underflow")),
                }
            }
            b's' | b'u' => {
                let items = if op == b's' {
                    let v = pop(&mut stack)?;
                    let k = pop(&mut stack)?;
                    vec![k, v]
                } else {
                    pop_mark(&mut stack, &mut marks)?
                };
                if items.len() % 2 != 0 {
                    return Err(bad("odd number of items for SETITEMS"));
                }
                let mut it = items.into_iter();
                match stack.last() {
                    Some(PV::Dict(d)) => {
                        let mut d = d.borrow_mut();
                        while let (Some(k), Some(v)) = (it.next(), it.next()) {
                            d.insert(k, v);
                        }
                    }
                    Some(PV::Object(o)) => {
                        let mut o = o.borrow_mut();
                        while let (Some(k), Some(v)) = (it.next(), it.next()) {
                            o.items.push(PV::Tuple(Rc::new(vec![k, v])));
                        }
                    }
                    Some(other) => return Err(bad(&format!("sets items of a {}", other.kind()))),
                    None => return Err(bad("stack underflow")),
                }
            }
            b'c' => {
                let module = r.line()?.to_string();
                let name = r.line()?;
                stack.push(find_class(&module, name)?);
            }
            0x93 => {
                let name = pop(&mut stack)?;
                let module = pop(&mut stack)?;
                let (PV::Str(module), PV::Str(name)) = (&module, &name) else {
                    return Err(bad("STACK_GLOBAL requires str"));
                };
                stack.push(find_class(module, name)?);
            }
            b'R' | 0x81 => {
                // REDUCE, NEWOBJ
                let args = pop(&mut stack)?;
                let f = pop(&mut stack)?;
                let args = match args {
                    PV::Tuple(t) => t.to_vec(),
                    other => return Err(bad(&format!("arguments are a {}", other.kind()))),
                };
                stack.push(call(&f, args)?);
            }
            0x92 => {
                // NEWOBJ_EX: cls, args, kwargs (the keyword arguments are not kept)
                pop(&mut stack)?;
                let args = pop(&mut stack)?
                    .seq()
                    .ok_or_else(|| bad("NEWOBJ_EX arguments"))?;
                let f = pop(&mut stack)?;
                stack.push(call(&f, args)?);
            }
            b'b' => {
                let state = pop(&mut stack)?;
                let obj = stack.last().ok_or_else(|| bad("stack underflow"))?;
                build(obj, state)?;
            }
            b'Q' => {
                let pid = pop(&mut stack)?;
                stack.push(storages.load(&pid)?);
            }
            b'P' => {
                let pid = r.line()?;
                return Err(ConvertError::Checkpoint(format!(
                    "unknown persistent id {:.80}",
                    pid
                )));
            }
            b'p' | b'q' | b'r' | 0x94 => {
                let idx = match op {
                    b'p' => r.line()?.parse().map_err(|_| bad("bad PUT"))?,
                    b'q' => usize::from(r.u8()?),
                    b'r' => r.u32()?,
                    _ => memo.len(),
                };
                let top = stack
                    .last()
                    .cloned()
                    .ok_or_else(|| bad("stack underflow"))?;
                memo.insert(idx, top);
            }
            b'g' | b'h' | b'j' => {
                let idx = match op {
                    b'g' => r.line()?.parse().map_err(|_| bad("bad GET"))?,
                    b'h' => usize::from(r.u8()?),
                    _ => r.u32()?,
                };
                let v = memo
                    .get(&idx)
                    .cloned()
                    .ok_or_else(|| bad(&format!("memo value not found at index {idx}")))?;
                stack.push(v);
            }
            b'i' => {
                // INST module name: a class instantiated with the marked arguments.
                let module = r.line()?.to_string();
                let name = r.line()?.to_string();
                let cls = find_class(&module, &name)?;
                let args = pop_mark(&mut stack, &mut marks)?;
                stack.push(call(&cls, args)?);
            }
            b'o' => {
                let mut items = pop_mark(&mut stack, &mut marks)?;
                if items.is_empty() {
                    return Err(bad("OBJ without a class"));
                }
                let cls = items.remove(0);
                stack.push(call(&cls, items)?);
            }
            0x82..=0x84 => {
                return Err(ConvertError::Checkpoint(
                    "the checkpoint's pickle uses the copyreg extension registry, which a model \
                     checkpoint never needs; refused without running anything"
                        .into(),
                ))
            }
            other => return Err(bad(&format!("invalid load key, '\\x{other:02x}'"))),
        }
    }
}

/// Reads a `torch.save` file into a [`Value`] tree (see the module doc).
///
/// Fails with [`ConvertError::Checkpoint`] for files that are not PyTorch zip checkpoints,
/// damaged archives, and pickles that ask for anything outside what a checkpoint needs.
pub fn load_checkpoint(path: &Path) -> Result<Value> {
    let shown = path.display();
    let at = |e: ConvertError| match e {
        ConvertError::Checkpoint(m) => ConvertError::Checkpoint(format!("{shown}: {m}")),
        other => other,
    };
    let file = FileBytes::open(path)
        .map_err(|e| ConvertError::Checkpoint(format!("{shown}: cannot read: {e}")))?;
    let head = file.first().copied();
    let file = Arc::new(file);
    let Some(archive) = Archive::new(file).map_err(at)? else {
        if head == Some(0x80) {
            return Err(ConvertError::Checkpoint(format!(
                "{shown}: a legacy (pre-1.6) PyTorch file; re-save it with a current torch \
                 (torch.save(torch.load(f), f)) to convert it"
            )));
        }
        return Err(ConvertError::Checkpoint(format!(
            "{shown}: not a PyTorch checkpoint (not a zip archive)"
        )));
    };
    let pkl = archive
        .members()
        .iter()
        .find(|m| m.name.ends_with("data.pkl") && m.name.matches('/').count() == 1)
        .ok_or_else(|| {
            ConvertError::Checkpoint(format!(
                "{shown}: no data.pkl in the archive: not a torch.save file"
            ))
        })?;
    let prefix = pkl.name[..pkl.name.len() - "data.pkl".len()].to_string();
    let big_endian = match archive.member(&format!("{prefix}byteorder")) {
        Some(m) => archive.read(m).map_err(at)?.trim_ascii() == b"big",
        None => false,
    };
    let data = archive.read(pkl).map_err(at)?;
    let mut storages = Storages {
        archive: &archive,
        prefix,
        big_endian,
        loaded: HashMap::new(),
    };
    unpickle(&data, &mut storages).map_err(at)
}

#[cfg(test)]
#[path = "pickle_tests.rs"]
mod tests;
