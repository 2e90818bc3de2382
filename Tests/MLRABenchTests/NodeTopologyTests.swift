import MLRACore
import MLRAParallel
import XCTest

/// TP groups from the node layout (NodeTopology, no MPI needed): consecutive runs of t
/// in node-major order, so groups stay inside nodes whatever order the launcher placed
/// the ranks in, and a layout that cannot is refused with one sentence.
final class NodeTopologyTests: XCTestCase {
    /// 2 nodes × 2 ranks, by slot (ranks 0,1 on node 0) or by node (ranks 0,2 on node 0).
    static let bySlot = NodeTopology(nodeOf: [0, 0, 1, 1], localRankOf: [0, 1, 0, 1], hostOf: ["n1", "n2"], rank: 0)
    static let byNode = NodeTopology(nodeOf: [0, 1, 0, 1], localRankOf: [0, 0, 1, 1], hostOf: ["n1", "n2"], rank: 1)

    func groups(_ t: NodeTopology, tp: Int) -> [[Int]] {
        let order = t.nodeMajorOrder
        return stride(from: 0, to: order.count, by: tp).map { Array(order[$0..<($0 + tp)]) }
    }

    func testGroupsStayInsideNodesUnderEitherMapping() {
        XCTAssertEqual(groups(Self.bySlot, tp: 2), [[0, 1], [2, 3]])
        XCTAssertEqual(groups(Self.byNode, tp: 2), [[0, 2], [1, 3]])
        for t in [Self.bySlot, Self.byNode] {
            for g in groups(t, tp: 2) { XCTAssertEqual(t.nodes(of: g).count, 1, "group \(g)") }
            XCTAssertNil(t.crossNodeReason(tp: 1))
            XCTAssertNil(t.crossNodeReason(tp: 2))
            XCTAssertNoThrow(try TPGroups.check(tp: 2, topology: t, allowCrossNode: false))
        }
        XCTAssertEqual(Self.byNode.localRank, 0)
        XCTAssertEqual(Self.byNode.localSize, 2)
        XCTAssertEqual(Self.byNode.ranksPerNode, [2, 2])
    }

    func testOneNodeKeepsConsecutiveRanks() {
        let one = NodeTopology(nodeOf: [0, 0, 0, 0], localRankOf: [0, 1, 2, 3], hostOf: ["vm"], rank: 0)
        XCTAssertEqual(groups(one, tp: 2), [[0, 1], [2, 3]])
        XCTAssertNil(one.crossNodeReason(tp: 4))
    }

    func testSpanningGroupIsRefusedUnlessAllowed() {
        let reason = try? XCTUnwrap(Self.bySlot.crossNodeReason(tp: 4))
        XCTAssertEqual(reason, "TP degree t = 4 cannot be formed inside one node with 2 ranks per node on 2 nodes: a TP group stays "
                       + "inside one node, so t must divide the ranks per node (--ntasks-per-node); pass --allow-cross-node-tp "
                       + "to let TP groups span nodes")
        XCTAssertThrowsError(try TPGroups.check(tp: 4, topology: Self.bySlot, allowCrossNode: false))
        XCTAssertNoThrow(try TPGroups.check(tp: 4, topology: Self.bySlot, allowCrossNode: true))
        XCTAssertEqual(Self.bySlot.nodes(of: groups(Self.bySlot, tp: 4)[0]), [0, 1])
        // Still a divisor of the world: no flag makes t = 3 of 4 ranks legal.
        XCTAssertThrowsError(try TPGroups.check(tp: 3, topology: Self.bySlot, allowCrossNode: true))
    }

    func testUnevenNodesNameEveryCount() {
        let uneven = NodeTopology(nodeOf: [0, 0, 0, 1], localRankOf: [0, 1, 2, 0], hostOf: ["a", "b"], rank: 0)
        XCTAssertEqual(uneven.crossNodeReason(tp: 2)?.contains("ranks per node 3,1 on 2 nodes"), true)
        XCTAssertNotNil(uneven.crossNodeReason(tp: 4))
    }
}
