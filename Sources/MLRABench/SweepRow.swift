import Foundation
import MLRACore

/// One row of the sweep's CSV. Its coding keys are the schema: `ResultsSchema.columns` is
/// `CodingKeys.allCases`, in this order, and docs/csv-schema.md is held to it by a test. The
/// properties carry the columns' own names (snake case, units in the names), so that the
/// code, the CSV, the document and the analysis speak one vocabulary and a column can be
/// found by grepping its name. Every cell is text as written (numbers already formatted by
/// `fmt`; empty means "not applicable"): the row is written, broadcast and resumed as text.
public struct SweepRow: Codable, Equatable, Sendable {
    // Metadata of the run and the row.
    public var schema_version = "", run_id = "", config_id = "", harness_version = "", git_rev = "", host = ""
    public var mpi_library = "", world_size = "", array_task = "", array_count = "", date_utc = ""
    public var noise_cv_max = "", noise_lost_fraction_max = "", noise_top_hz = "", group_nodes = "", group_hosts = ""
    // The calibration the row is held to (the CPU's, or the GPU's on cuda rows).
    public var calib_threads = "", calib_read_gbs = "", calib_triad_gbs = "", calib_sgemm_gflops = "", calib_fma_gflops = ""
    public var calib_fma_width = "", calib_source = ""
    public var gpu_calib_read_gbs = "", gpu_calib_copy_gbs = "", gpu_calib_tensor_tflops = "", gpu_calib_fma_tflops = ""
    // The configuration.
    public var variant = "", scope = "", tp = "", dp = "", tp_group = "", context = "", batch = "", n_layer = "", n_embd = ""
    public var n_head = "", head_dim = "", rope_dim = "", kv_lora_rank = "", q_lora_rank = "", block_width = "", kv_heads = ""
    public var intermediate_size = "", vocab_size = "", kv_dtype = "", threads = "", device = "", kernel_isa = "", kernel_math = ""
    public var gpu_kernel = ""
    /// The all-reduce's library (`--collective`; cpu rows: mpi).
    public var collective = ""
    // The GPU the row ran on: CUDADevice.csvColumns (a test holds the two lists together).
    public var gpu_name = "", gpu_uuid = "", gpu_pci_bus_id = "", gpu_driver = "", gpu_sm_clock_mhz = "", gpu_mem_clock_mhz = ""
    public var gpu_ranks_sharing = ""
    public var timing_mode = "", cold_cache = "", seed = "", `repeat` = ""
    // The plan's bytes and FLOPs.
    public var kv_elems_per_token = "", kv_bytes_per_token = "", kv_bytes_per_rank = "", kernel_bytes_per_step = ""
    public var kernel_flops_per_step = "", weight_bytes_per_rank = "", allreduce_bytes_per_step = "", allreduce_count_per_step = ""
    /// How the step's all-reduces moved their data (empty when a step has none): mpi-host
    /// (MPI on host arrays, cpu), mpi-host-staged (device → pinned host → MPI → device),
    /// mpi-cuda-aware (MPI on device pointers), nccl-VERSION.
    public var allreduce_path = ""
    // Validation and timings.
    public var validation = "", validation_max_err = "", validation_atol = "", validation_rtol = "", warmup_steps = "", timed_steps = "", timer_resolution_us = ""
    public var step_us_median = "", step_us_p10 = "", step_us_p90 = "", step_us_min = "", step_us_max = ""
    public var kernel_us_median = "", kernel_us_p10 = "", kernel_us_p90 = "", allreduce_us_median = ""
    public var allreduce_us_p10 = "", allreduce_us_p90 = "", imbalance_us_median = ""
    /// cuda layer rows: the projections' GPU time (docs/gpu-layer.md).
    public var projection_us_median = ""
    // Throughput: this row's TP group's, and the whole job's (the same on every row of a
    // configuration: sum `group_tokens_per_s` over rows, never `job_tokens_per_s`).
    public var group_tokens_per_s = "", job_tokens_per_s = ""
    public var achieved_gbs = "", achieved_gflops = "", roofline_us = "", roofline_fraction = ""

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case schema_version, run_id, config_id, harness_version, git_rev, host, mpi_library, world_size
        case array_task, array_count, date_utc, noise_cv_max, noise_lost_fraction_max, noise_top_hz
        case group_nodes, group_hosts
        case calib_threads, calib_read_gbs, calib_triad_gbs, calib_sgemm_gflops, calib_fma_gflops, calib_fma_width
        case calib_source, gpu_calib_read_gbs, gpu_calib_copy_gbs, gpu_calib_tensor_tflops, gpu_calib_fma_tflops
        case variant, scope, tp, dp, tp_group, context, batch, n_layer, n_embd, n_head, head_dim
        case rope_dim, kv_lora_rank, q_lora_rank, block_width, kv_heads, intermediate_size, vocab_size, kv_dtype
        case threads, device, kernel_isa, kernel_math, gpu_kernel, collective
        case gpu_name, gpu_uuid, gpu_pci_bus_id, gpu_driver, gpu_sm_clock_mhz, gpu_mem_clock_mhz, gpu_ranks_sharing
        case timing_mode, cold_cache, seed, `repeat`
        case kv_elems_per_token, kv_bytes_per_token, kv_bytes_per_rank, kernel_bytes_per_step, kernel_flops_per_step
        case weight_bytes_per_rank, allreduce_bytes_per_step, allreduce_count_per_step, allreduce_path
        case validation, validation_max_err, validation_atol, validation_rtol, warmup_steps, timed_steps, timer_resolution_us
        case step_us_median, step_us_p10, step_us_p90, step_us_min, step_us_max
        case kernel_us_median, kernel_us_p10, kernel_us_p90, allreduce_us_median
        case allreduce_us_p10, allreduce_us_p90, imbalance_us_median, projection_us_median
        case group_tokens_per_s, job_tokens_per_s, achieved_gbs, achieved_gflops, roofline_us, roofline_fraction
    }

    public init() {}

    /// The columns, in the schema's order.
    public static let columns = CodingKeys.allCases.map(\.rawValue)

    /// The row as column → cell (every column present).
    public var cells: [String: String] {
        // Every property is a string, so this round trip cannot fail.
        try! JSONDecoder().decode([String: String].self, from: JSONEncoder().encode(self))
    }

    /// Sets columns given by name (the parts of a row built elsewhere: the run's metadata,
    /// the resume key's fields, a calibration's columns, a device's). A name that is not a
    /// column is refused, so a misspelt column fails the first test that writes a row
    /// instead of silently writing nothing.
    public mutating func set(_ columns: [String: String]) throws {
        if let unknown = columns.keys.sorted().first(where: { CodingKeys(rawValue: $0) == nil }) {
            throw HarnessError("internal: '\(unknown)' is not a column of the sweep's CSV schema \(ResultsSchema.version)")
        }
        self = try JSONDecoder().decode(Self.self, from: JSONEncoder().encode(cells.merging(columns) { $1 }))
    }
}
