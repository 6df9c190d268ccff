//! The host's side of the command line's `reid` hooks (`crate::cli::reid`): numpy's seeded
//! permutation, drawn under the GIL.

use pyo3::prelude::*;

use super::cli::{python_error, PyHooks};
use super::reid::numpy_permutation;
use crate::error::Error;

impl crate::cli::reid::ReidHooks for PyHooks {
    fn permutation(&mut self, seed: u64, n: usize) -> Result<Vec<usize>, Error> {
        Python::attach(|py| numpy_permutation(py, seed, n).map_err(|e| python_error(py, &e)))
    }
}
