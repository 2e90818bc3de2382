import ArgumentParser
import Foundation
import MLRABench
import MLRACore

/// `mlra plan`: what each device caches, computes, holds and communicates per
/// variant and TP degree, computed from the plans (method §4–5), never from a table.
struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Per-device cache, FLOPs, weights and all-reduce bytes per variant and TP degree.",
        discussion: "At the defaults it reproduces the paper's Table 1 (kv_elems_per_token in units of head_dim: column kv_per_token_in_head_dims).")

    @Option(help: "Comma-separated variants.")
    var variants = "mha,mqa,gqa,mla,gla2,mlra2,mlra4"
    @Option(help: "Comma-separated TP degrees.")
    var tp = "1,2,4,8"
    @Option(help: "Query heads h.")
    var heads = 64
    @Option(name: .customLong("head-dim"), help: "d_h (GQA family) and d_n (MLA family).")
    var headDim = 128
    @Option(name: .customLong("rope-dim"), help: "d_r, the shared RoPE key width (MLA family).")
    var ropeDim = 64
    @Option(name: .customLong("kv-rank"), help: "kv_lora_rank d_c (MLA family).")
    var kvRank = 512
    @Option(name: .customLong("q-rank"), help: "q_lora_rank d_q (MLA family).")
    var qRank = 1536
    @Option(name: .customLong("kv-heads"), help: "KV heads of gqa (mha uses h, mqa 1).")
    var kvHeads = 8
    @Option(name: .customLong("n-embd"), help: "Model width d (default h·head_dim).")
    var nEmbd: Int?
    @Option(name: .customLong("kv-dtype"), help: "Cache dtype for byte counts: f32, f16, bf16.")
    var kvDtype: StorageDType = .bf16
    @Option(help: "Context length L for the per-step columns.")
    var context = 1
    @Option(help: "Output format: table or csv.")
    var format: OutputFormat = .table

    /// plan reads no files: every error it meets is a flag value it cannot plan.
    func run() throws { try checkingFlags(printPlan) }

    func printPlan() throws {
        let list = try parseList(variants, "--variants", VariantName.parseList)
        let degrees = try parseIntList(tp, "--tp")
        if let bad = degrees.first(where: { $0 < 1 }) { throw HarnessError("--tp: TP degrees must be at least 1, got \(bad)") }
        for (v, n) in [("--heads", heads), ("--head-dim", headDim), ("--rope-dim", ropeDim), ("--kv-rank", kvRank),
                       ("--q-rank", qRank), ("--kv-heads", kvHeads), ("--context", context)] { try requirePositive(n, v) }
        let modelWidth = try nEmbd ?? CheckedSize.product([heads, headDim], "--heads × --head-dim")
        var table = TextTable(columns: ["variant", "tp", "kv_elems_per_token", "kv_per_token_in_head_dims",
                                        "kv_bytes_per_token", "kernel_flops_per_token", "kernel_bytes_per_step",
                                        "kernel_flops_per_step", "weight_bytes_per_rank", "allreduce_bytes_per_step", "note"])
        for v in list {
            let layout = try LayerShape(variant: v, heads: heads, headDim: headDim, ropeDim: ropeDim, kvRank: kvRank, qLoraRank: qRank,
                                        kvHeads: .ofGQA(kvHeads), nEmbd: modelWidth).config.layout()
            for t in degrees {
                // An illegal TP degree is a row of the table; a size too large for an Int is an error.
                let cost: DecodeCost
                do { cost = try DecodeCost(layout, tp: t, dtype: kvDtype) } catch let e as HarnessError {
                    table.add([v.rawValue, "\(t)", "", "", "", "", "", "", "", "", "illegal: \(e.message)"])
                    continue
                }
                table.add([v.rawValue, "\(t)", "\(cost.kvElemsPerToken)", format(Double(cost.kvElemsPerToken) / Double(headDim)),
                           "\(cost.kvBytesPerToken)", "\(cost.kernelFlopsPerToken)", "\(try cost.kernelBytes(context: context))",
                           "\(try cost.kernelFlops(context: context))", "\(cost.weightElemsPerRank * 4)", "\(cost.allreduceBytesPerToken)", ""])
            }
        }
        if self.format == .table {
            print("# mlra \(HarnessVersion.string) plan: h=\(heads) head_dim=\(headDim) rope_dim=\(ropeDim) kv_rank=\(kvRank) q_rank=\(qRank) kv_heads=\(kvHeads) n_embd=\(modelWidth) kv_dtype=\(kvDtype.rawValue) context=\(context)")
        }
        print(self.format == .csv ? table.csv() : table.text(), terminator: "")
    }

    func format(_ x: Double) -> String { x == x.rounded() ? String(Int(x)) : String(format: "%g", x) }
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable { case table, csv }

/// A comma-separated flag's values. An empty list is refused: it would sweep or
/// print nothing and still exit 0.
func parseList<T>(_ text: String, _ flag: String, _ parse: (String) throws -> [T]) throws -> [T] {
    let values = try parse(text)
    guard !values.isEmpty else { throw HarnessError("\(flag) needs at least one value, got '\(text)'") }
    return values
}

/// A comma-separated list of an enum's values (--scopes, --devices); an unknown one is
/// refused naming the choices.
func parseChoiceList<T: RawRepresentable & CaseIterable>(_ text: String, _ flag: String, _ what: String) throws -> [T]
    where T.RawValue == String {
    try parseList(text, flag) { try $0.split(separator: ",").map { t in
        guard let v = T(rawValue: String(t)) else {
            let names = T.allCases.map(\.rawValue)
            throw HarnessError("unknown \(what) '\(t)'; expected \(names.dropLast().joined(separator: ", ")) or \(names.last!)")
        }
        return v
    } }
}

func parseIntList(_ text: String, _ flag: String) throws -> [Int] {
    try parseList(text, flag) { try $0.split(separator: ",").map {
        guard let v = Int($0.trimmingCharacters(in: .whitespaces)) else { throw HarnessError("\(flag): '\($0)' is not an integer") }
        return v
    } }
}

/// A fixed-width table for eyes and the same rows as CSV for tools.
struct TextTable {
    let columns: [String]
    var rows: [[String]] = []
    init(columns: [String]) { self.columns = columns }
    mutating func add(_ row: [String]) { rows.append(row) }

    func text() -> String {
        let widths = columns.indices.map { c in ([columns[c]] + rows.map { $0[c] }).map(\.count).max()! }
        func line(_ r: [String]) -> String {
            zip(r, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces) + "\n"
        }
        return line(columns) + rows.map(line).joined()
    }

    func csv() -> String {
        ([columns] + rows).map { $0.map(csvEscape).joined(separator: ",") }.joined(separator: "\n") + "\n"
    }
}
