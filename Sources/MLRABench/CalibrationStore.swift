import Foundation
import MLRACore
import MLRACuda

/// The calibration a CSV's rows are held to, kept beside it (`<out>.calibration.json`):
/// the first run into a CSV measures (or takes --calibration) and stores it; resumes and
/// later runs into the same CSV reuse it, unless --recalibrate. Without it, each run
/// measured afresh, so the rows of one file held to rooflines that differed a few percent
/// from run to run, and a resumed sweep mixed them. The stored `calib_source` is reused
/// with the calibration: it is part of the resume key, and a resume must find its rows.
public struct CalibrationStore: Codable, Equatable, Sendable {
    /// The CPU calibrations by thread count ("1", "2", …); a --calibration file serves every count.
    public var cpu: [String: Calibration]
    /// calib_source of the cpu rows held to them (`measured`, `measured-quick`, `file:…`).
    public var cpuSource: String
    public var gpu: GPUCalibration?
    /// calib_source of the cuda rows (`gpu-measured`, `gpu-file:…`).
    public var gpuSource: String?

    /// The store's keys are the CSV's names (`calib_source` of the cpu rows, of the cuda
    /// rows, and the calibrations' own); stores written before (`cpuSource`, `readGBs`, …)
    /// still load.
    enum CodingKeys: String, CodingKey {
        case cpu, cpuSource = "cpu_calib_source", gpu, gpuSource = "gpu_calib_source"
    }

    /// Every key renamed in a store: its own and its calibrations' (one old name each).
    public static let renamedKeys = ["cpu_calib_source": "cpuSource", "gpu_calib_source": "gpuSource"]
        .merging(Calibration.renamedKeys) { a, _ in a }.merging(GPUCalibration.renamedKeys) { a, _ in a }

    public init(cpu: [String: Calibration], cpuSource: String, gpu: GPUCalibration? = nil, gpuSource: String? = nil) {
        self.cpu = cpu; self.cpuSource = cpuSource; self.gpu = gpu; self.gpuSource = gpuSource
    }

    /// Where the store of a CSV lives.
    public static func path(for out: String) -> String { out + ".calibration.json" }

    /// The CPU calibration of `threads`: the stored one, or for a file calibration the file's (it serves every count).
    public func cpu(threads: Int) -> Calibration? {
        cpu["\(threads)"] ?? (cpuSource.hasPrefix("file:") ? cpu.values.first : nil)
    }

    /// The store beside `out`, or nil when there is none. A damaged store is refused:
    /// silently measuring again would hold new rows to another roofline than the old.
    public static func load(for out: String) throws -> CalibrationStore? {
        let path = path(for: out)
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let hint = "; give --recalibrate to measure (or take --calibration) again and replace it"
        guard let data = FileManager.default.contents(atPath: path) else { throw HarnessError("\(path): cannot read" + hint) }
        let store: CalibrationStore
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = RenamedKeys.readingOldNames(renamedKeys)
        do { store = try decoder.decode(CalibrationStore.self, from: data) } catch {
            throw HarnessError("\(path): not a calibration store of this harness" + hint)
        }
        for cal in store.cpu.values { try cal.validate(path: path) }
        guard !store.cpu.isEmpty || store.gpu != nil, !store.cpuSource.isEmpty else {
            throw HarnessError("\(path): holds no calibration" + hint)
        }
        return store
    }

    /// Written atomically (the old store or the whole new one, never half).
    public func write(for out: String) throws {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        try writeAtomically(try e.encode(self), to: Self.path(for: out))
    }
}
