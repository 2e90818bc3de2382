/// The harness version printed by `mlra --version` and written into every CSV row.
public enum HarnessVersion {
    public static let string = "0.1.0"
}
