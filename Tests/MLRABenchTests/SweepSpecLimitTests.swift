import Foundation
import MLRABench
import MLRACore
import XCTest

/// Issue 17, spec files and calibration files as hostile input: the total number of
/// configurations is capped before anything is expanded, keys the format does not
/// define and empty lists are refused by name, and calibration figures are validated.
final class SweepSpecLimitTests: XCTestCase {
    func load(_ json: String) throws -> SweepSpec {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("spec-\(UUID()).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        _ = FileManager.default.createFile(atPath: path, contents: Data(json.utf8))
        return try SweepSpec.load(path: path)
    }

    func message(_ body: () throws -> Void) -> String {
        do { try body(); return "accepted" } catch let e as HarnessError { return e.message } catch { return "not a HarnessError: \(error)" }
    }

    /// 100 grids of 63,000 configurations each (each well under the cap alone) were
    /// accepted as 3.87 million configurations, 27 s and 2.8 GB before the first ran.
    /// The total is now counted before any grid is expanded: refused at once.
    func testTotalConfigurationsAreCappedBeforeExpanding() throws {
        var g = SweepSpec.Grid()
        g.variants = [.mla, .gqa, .mha]; g.contexts = Array(1...100); g.batch = Array(1...210)   // 63,000
        let spec = SweepSpec(grids: Array(repeating: g, count: 100))
        let start = Date()
        XCTAssertEqual(message { _ = try spec.configurations(worldSize: 1, maxThreads: 1) },
                       "the spec's 100 grids expand to 6300000 configurations; at most 100000 are supported in total")
        XCTAssertLessThan(Date().timeIntervalSince(start), 1, "the total must be counted, not expanded")
        // One grid at the cap is still accepted.
        var one = SweepSpec.Grid(); one.variants = [.mla]; one.contexts = Array(1...100); one.batch = Array(1...1000)
        XCTAssertEqual(message { _ = try SweepSpec(grids: [one, one]).configurations(worldSize: 1, maxThreads: 1) },
                       "the spec's 2 grids expand to 200000 configurations; at most 100000 are supported in total")
    }

    /// A misspelt key ("variant", "context") ran all seven variants at the default
    /// context. Every key of the spec, its defaults and each grid must be known.
    func testUnknownKeysAreRefusedByName() throws {
        XCTAssertTrue(message { _ = try self.load(#"{"defaults": {}, "grids": [{"variant": ["mla"]}]}"#) }
            .contains("spec key 'grids.0.variant' is unknown"))
        XCTAssertTrue(message { _ = try self.load(#"{"defaults": {"context": [64]}, "grids": [{}]}"#) }
            .contains("spec key 'defaults.context' is unknown"))
        XCTAssertTrue(message { _ = try self.load(#"{"defaults": {}, "grids": [{}], "grid": []}"#) }
            .contains("spec key 'grid' is unknown"))
        // Every key the format defines is accepted (the spec of every preset reads back).
        for preset in SweepPreset.allCases { _ = try load(preset.spec(worldSize: 4).json()) }
    }

    /// `"variants": []` ran nothing and exited 0; every list must name at least one value.
    func testEmptyListsAreRefusedByName() throws {
        for key in ["variants", "kv_dtypes", "scopes", "tp", "contexts", "threads"] {
            let spec = try load(#"{"defaults": {}, "grids": [{"\#(key)": []}]}"#)
            XCTAssertEqual(message { _ = try spec.configurations(worldSize: 1, maxThreads: 1) }, "grid 0: '\(key)' is empty")
        }
    }

    /// Thread counts are bounded by the node's cores (an unbounded count used up the PIDs).
    func testThreadCountsAreBoundedByTheCores() throws {
        var g = SweepSpec.Grid(); g.variants = [.mla]; g.threads = [1, 3]
        XCTAssertEqual(message { _ = try SweepSpec(grids: [g]).configurations(worldSize: 1, maxThreads: 2) },
                       "grid 0: 'threads' 3 is more than the 2 cores of this node; at most one kernel thread per core is supported")
        XCTAssertEqual(try SweepSpec(grids: [g]).configurations(worldSize: 1, maxThreads: 3).count, 2)
    }

    /// A calibration file is validated like any input: a huge llcBytes (which made the
    /// cold-cache sizing overflow), zero or negative figures and thread counts are refused.
    func testCalibrationFilesAreValidated() throws {
        let good = Calibration(threads: 1, readGBs: 10, triadGBs: 9, sgemmGFlops: 50, fmaGFlops: 20, fmaWidth: "avx2",
                               blasCore: "test", llcBytes: 1 << 20, arrayBytes: 4 << 20)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cal-\(UUID()).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        func load(_ edit: (inout Calibration) -> Void) -> String {
            var c = good
            edit(&c)
            _ = FileManager.default.createFile(atPath: path, contents: try! JSONEncoder().encode(c))
            return message { _ = try Calibration.load(path: path) }
        }
        XCTAssertEqual(load { _ in }, "accepted")
        XCTAssertTrue(load { $0.llcBytes = Int.max }.hasSuffix("calibration 'llc_bytes' is 9223372036854775807; it must be in 1...1099511627776"))
        XCTAssertTrue(load { $0.llcBytes = 0 }.contains("'llc_bytes' is 0"))
        XCTAssertTrue(load { $0.arrayBytes = -4 }.contains("'array_bytes' is -4"))
        XCTAssertTrue(load { $0.threads = 0 }.contains("'threads' is 0"))
        XCTAssertTrue(load { $0.threads = -3 }.contains("'threads' is -3"))
        XCTAssertTrue(load { $0.readGBs = -1 }.contains("'read_gbs' is -1.0; it must be a positive finite number"))
        XCTAssertTrue(load { $0.triadGBs = 0 }.contains("'triad_gbs' is 0.0"))
        XCTAssertTrue(load { $0.fmaGFlops = 0 }.contains("'fma_gflops' is 0.0"))
        XCTAssertTrue(load { $0.fmaWidth = "avx9" }.contains("'fma_width' is 'avx9'"))
        // Strict JSON: a key given twice, a count written as a fraction, an older file without fmaWidth.
        func raw(_ text: String) -> String {
            _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
            return message { _ = try Calibration.load(path: path) }
        }
        let json = String(decoding: try JSONEncoder().encode(good), as: UTF8.self)
        XCTAssertEqual(raw(json.replacingOccurrences(of: "{", with: #"{"llc_bytes": 1,"#)),
                       "\(path): calibration key 'llc_bytes' appears twice (re-run 'mlra calibrate --format json')")
        // Under its new name and its old one at once: which was meant cannot be told.
        XCTAssertEqual(raw(json.replacingOccurrences(of: "{", with: #"{"llcBytes": 1,"#)),
                       "\(path): calibration gives both 'llc_bytes' and its old name 'llcBytes'; keep one (re-run 'mlra calibrate --format json')")
        XCTAssertEqual(raw(json.replacingOccurrences(of: #""threads":1"#, with: #""threads":1.5"#)),
                       "\(path): calibration key 'threads' must be an integer, got 1.5 (re-run 'mlra calibrate --format json')")
        var old = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        old["fma_width"] = nil
        XCTAssertEqual(raw(String(decoding: try JSONSerialization.data(withJSONObject: old), as: UTF8.self)),
                       "\(path): calibration is missing key 'fma_width' (re-run 'mlra calibrate --format json')")
    }
}
