// SIMD building blocks for the kernels: unaligned 16-lane loads and stores, the reductions
// (sum, dot, max, sum of squares) that only vectorise when written with SIMD types, and a
// branch-free exp that LLVM vectorises inside plain element loops.

/// Eight float lanes: one AVX2 register.
public typealias Vec8 = SIMD8<Float>

@inlinable @inline(__always)
public func load8(_ p: UnsafePointer<Float>) -> Vec8 {
    UnsafeRawPointer(p).loadUnaligned(as: Vec8.self)
}

@inlinable @inline(__always)
public func store8(_ v: Vec8, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vec8.self)
}

/// Loads the first `count` (< 8) floats and fills the other lanes with `fill`.
@inlinable @inline(__always)
public func loadPartial8(_ p: UnsafePointer<Float>, _ count: Int, fill: Float = 0) -> Vec8 {
    var v = Vec8(repeating: fill)
    for i in 0..<count { v[i] = p[i] }
    return v
}

/// Sixteen float lanes: one AVX-512 register, or two AVX2 registers on an x86-64-v3 build.
public typealias Vec16 = SIMD16<Float>

@usableFromInline @inline(__always)
func load16(_ p: UnsafePointer<Float>) -> Vec16 {
    UnsafeRawPointer(p).loadUnaligned(as: Vec16.self)
}

@inline(__always)
func store16(_ v: Vec16, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vec16.self)
}

/// Loads the first `count` (< 16) floats and fills the other lanes with `fill`.
@usableFromInline @inline(__always)
func loadPartial16(_ p: UnsafePointer<Float>, _ count: Int, fill: Float = 0) -> Vec16 {
    var v = Vec16(repeating: fill)
    for i in 0..<count { v[i] = p[i] }
    return v
}

/// y[i] += x[i], serially (for short runs inside kernels that are already threaded).
@inline(__always)
func accumulate(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ count: Int) {
    var i = 0
    while i + 16 <= count {
        store16(load16(y + i) + load16(x + i), y + i)
        i += 16
    }
    while i < count {
        y[i] += x[i]
        i += 1
    }
}

/// Σ x[i].
public func sum(_ x: UnsafePointer<Float>, _ count: Int) -> Float {
    var acc0 = Vec16(), acc1 = Vec16()
    var i = 0
    while i + 32 <= count {
        acc0 += load16(x + i)
        acc1 += load16(x + i + 16)
        i += 32
    }
    while i + 16 <= count { acc0 += load16(x + i); i += 16 }
    acc0 += loadPartial16(x + i, count - i)
    return (acc0 + acc1).sum()
}

/// Σ x[i]·y[i].
public func dot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ count: Int) -> Float {
    var acc0 = Vec16(), acc1 = Vec16()
    var i = 0
    while i + 32 <= count {
        acc0 += load16(x + i) * load16(y + i)
        acc1 += load16(x + i + 16) * load16(y + i + 16)
        i += 32
    }
    while i + 16 <= count { acc0 += load16(x + i) * load16(y + i); i += 16 }
    acc0 += loadPartial16(x + i, count - i) * loadPartial16(y + i, count - i)
    return (acc0 + acc1).sum()
}

/// Σ (x[i] − center)².
public func sumOfSquares(_ x: UnsafePointer<Float>, _ count: Int, center: Float = 0) -> Float {
    let c = Vec16(repeating: center)
    var acc0 = Vec16(), acc1 = Vec16()
    var i = 0
    while i + 32 <= count {
        let d0 = load16(x + i) - c, d1 = load16(x + i + 16) - c
        acc0 += d0 * d0
        acc1 += d1 * d1
        i += 32
    }
    while i + 16 <= count { let d = load16(x + i) - c; acc0 += d * d; i += 16 }
    let d = loadPartial16(x + i, count - i, fill: center) - c
    acc0 += d * d
    return (acc0 + acc1).sum()
}

/// max x[i]; −∞ for an empty range. Inlinable, and reduced lane by lane at the end: SIMD's
/// own `max()` compiled to a call, which cost attention 8 % of its forward at one call a row.
@inlinable
public func maximum(_ x: UnsafePointer<Float>, _ count: Int) -> Float {
    var acc = Vec16(repeating: -.infinity)
    var i = 0
    while i + 16 <= count {
        acc = acc.replacing(with: load16(x + i), where: load16(x + i) .> acc)
        i += 16
    }
    let tail = loadPartial16(x + i, count - i, fill: -.infinity)
    acc = acc.replacing(with: tail, where: tail .> acc)
    let eight = acc.lowHalf.replacing(with: acc.highHalf, where: acc.highHalf .> acc.lowHalf)
    let four = eight.lowHalf.replacing(with: eight.highHalf, where: eight.highHalf .> eight.lowHalf)
    return max(max(four[0], four[1]), max(four[2], four[3]))
}

/// e^x for x ≤ 88 (clamped above; 0 below −87, so e^−∞ is exactly 0, as masks need),
/// relative error about 2e-7, with no libm call so
/// that element loops around it vectorise. Cody–Waite reduction x = n·ln2 + r, |r| ≤ ln2/2;
/// e^r = 1 + r + r²·P(r) with Cephes' degree-5 minimax P (Moshier, Cephes expf.c); 2^n is
/// assembled from its bits. Fused multiply-adds throughout: half the instructions.
@inlinable @inline(__always)
public func fastExp(_ input: Float) -> Float {
    let x = Swift.min(Swift.max(input, -87.0), 88.0)
    let roundingShift: Float = 12_582_912  // 1.5·2^23: adding it rounds to an integer
    let shifted = roundingShift.addingProduct(x, 1.442_695_04)
    let n = shifted - roundingShift
    let r = x.addingProduct(n, -0.693_145_75).addingProduct(n, -1.428_606_8e-6)
    var p: Float = 1.987_569_15e-4
    p = Float(1.398_199_95e-3).addingProduct(p, r)
    p = Float(8.333_451_9e-3).addingProduct(p, r)
    p = Float(4.166_579_59e-2).addingProduct(p, r)
    p = Float(1.666_666_55e-1).addingProduct(p, r)
    p = Float(5.000_000_12e-1).addingProduct(p, r)
    let er = (1 + r).addingProduct(r * r, p)
    let k = Int32(bitPattern: shifted.bitPattern) &- Int32(bitPattern: roundingShift.bitPattern)
    let twoToN = Float(bitPattern: UInt32(bitPattern: (k &+ 127) &<< 23))
    return input < -87 ? 0 : er * twoToN
}

/// e^x on eight lanes for x ≤ 0 (a softmax's numerators: scores minus their row's maximum).
/// Below about −87.4 the result is exactly 0, so e^−∞ is 0 as masks need: x is clamped at −88,
/// where the exponent n = −127 gives 2ⁿ all-zero bits. Cody–Waite reduction as `fastExp`, then
/// e^r = 1 + r + r²·(c₀ + c₁r + c₂r² + c₃r³), a cubic fitted here for least relative error on
/// |r| ≤ ln2/2 (1.0e-7 exactly, 2e-7 in float arithmetic, as `fastExp`): two fused multiply-adds
/// and three compare-and-blends fewer, for the loop that dominates attention after its products.
@inlinable @inline(__always)
public func fastExpNonPositive(_ input: Vec8) -> Vec8 {
    let x = input.replacing(with: -88, where: input .< -88)
    let roundingShift = Vec8(repeating: 12_582_912)  // 1.5·2^23: adding it rounds to an integer
    let shifted = roundingShift.addingProduct(x, Vec8(repeating: 1.442_695_04))
    let n = shifted - roundingShift
    let r = x.addingProduct(n, Vec8(repeating: -0.693_145_75)).addingProduct(n, Vec8(repeating: -1.428_606_8e-6))
    var p = Vec8(repeating: 8.312_58e-3)
    p = Vec8(repeating: 4.189_013e-2).addingProduct(p, r)
    p = Vec8(repeating: 1.666_711_4e-1).addingProduct(p, r)
    p = Vec8(repeating: 4.999_923_2e-1).addingProduct(p, r)
    let er = (1 + r).addingProduct(r * r, p)
    let k = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- SIMD8(repeating: Int32(bitPattern: (12_582_912 as Float).bitPattern))
    return er * unsafeBitCast((k &+ 127) &<< 23, to: Vec8.self)
}
