/// An optional strong reference that also lends its object to a hot path without a retain.
///
/// Binding a stored class reference (`if let recorder = self.recorder { … }`) retains the object
/// and releases it afterwards. Those are atomic read-modify-writes: each waits for every store
/// before it to reach the cache, and on a receive path that runs once a packet for thousands of
/// connections, they were a visible share of the loop (`swift_retain` in the profiles). `object`
/// holds the reference; an unretained copy, kept equal to it by the setter, is what `withObject`
/// hands to its body, guaranteed alive by `object` for the length of the call.
///
/// The one rule, which the compiler cannot check: **`body` must not replace `object`** (directly,
/// or through anything it calls back) — that could free the object while `body` still uses it.
/// Every user keeps this by replacing `object` only in its own lifecycle steps (keys installed,
/// recorder opened or finished, close), never from the packet path that calls `withObject`.
///
/// Not `Sendable`: it lives in a class confined to one event loop, as its users do.
@frozen
public struct HeldReference<Object: AnyObject> {
    @usableFromInline var strong: Object?
    @usableFromInline var unretained: Unmanaged<Object>?

    @inlinable
    public init(_ object: Object? = nil) {
        strong = object
        unretained = object.map { Unmanaged.passUnretained($0) }
    }

    /// The object held (nil: none). Reading it retains, as any reference does; setting it keeps the
    /// unretained copy equal.
    @inlinable
    public var object: Object? {
        get { strong }
        set {
            unretained = newValue.map { Unmanaged.passUnretained($0) }
            strong = newValue
        }
    }

    /// Whether an object is held.
    @inlinable
    public var isEmpty: Bool { unretained == nil }

    /// Calls `body` with the object, not retained (nil when none is held, without calling `body`).
    /// `body` must not replace `object` (see the type's comment).
    @inlinable @inline(__always) @discardableResult
    public func withObject<Result>(_ body: (Object) throws -> Result) rethrows -> Result? {
        guard let unretained else { return nil }
        return try unretained._withUnsafeGuaranteedRef(body)
    }
}
