//! Every GPU kernel against its CPU reference (`llava_lens_tensor::cpu`) on seeded random inputs,
//! with shapes including 1, primes and non-multiples of workgroup and tile sizes, explicit
//! per-op tolerances, NaN/inf checks and guard regions around every output.

mod activation;
mod add;
mod attention;
mod bind_groups;
mod capture;
mod copy;
mod errors;
mod explain;
mod flash_attention;
mod linear;
mod norm;
mod reduce;
mod rope;
mod segments;
mod split;
