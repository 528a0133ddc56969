using System.Text.Json.Serialization;

namespace P2PReplay.Replay;

/// <summary>Record kinds of a recording, on top of the chunked container (P2PReplay.Replay.Format).</summary>
public static class LogRecordKind
{
    /// <summary>JSON <see cref="LogHeader"/>: always the first record.</summary>
    public const byte Header = 1;

    /// <summary>One nondeterministic input (<see cref="InputEvent"/>).</summary>
    public const byte Event = 2;

    /// <summary>A state digest (<see cref="StateDigest"/>).</summary>
    public const byte Digest = 3;

    /// <summary>JSON <see cref="LogTrailer"/>: the last record of a complete recording.</summary>
    public const byte Trailer = 4;
}

/// <summary>One CPUID leaf of the guest's baseline.</summary>
public sealed record CpuidLeaf(uint Function, uint Index, uint Flags, uint Eax, uint Ebx, uint Ecx, uint Edx);

/// <summary>What a recording needs to re-create its VM, and what replay checks before it starts.</summary>
public sealed record LogHeader
{
    public const int CurrentVersion = 1;

    public int Version { get; init; } = CurrentVersion;

    /// <summary>Absolute guest path of the program (also its host path when it was not in the image).</summary>
    public required string ProgramPath { get; init; }

    /// <summary>SHA-256 of the program file, hex.</summary>
    public required string ProgramSha256 { get; init; }

    /// <summary>Host path of the image when recorded (a hint for replay; the hash decides).</summary>
    public string? ImageRoot { get; init; }

    /// <summary>SHA-256 over the image tree (<see cref="ImageHash"/>), or "empty".</summary>
    public required string ImageSha256 { get; init; }

    public required ulong MemorySize { get; init; }

    public required IReadOnlyList<string> Arguments { get; init; }

    public required IReadOnlyList<string> Environment { get; init; }

    public required IReadOnlyList<CpuidLeaf> Cpuid { get; init; }

    /// <summary>Vendor, CPUID.01H:EAX signature and KVM module of the recording host.</summary>
    public required string HostCpu { get; init; }

    /// <summary>The host CPU the recording's vCPU was pinned to (null: not pinned); a replay pins to it too when it exists.</summary>
    public int? PinnedHostCpu { get; init; }

    /// <summary>False on kvm_pvm: guest rdtsc/cpuid/rdrand read the host directly and are not logged.</summary>
    public required bool TimeStampCounterTrapped { get; init; }

    /// <summary>A digest every this many exits (and at the end).</summary>
    public required long DigestInterval { get; init; }

    /// <summary>The recorder skipped due digests while they would have cost over 2% of the run (the default).</summary>
    public bool DigestRateLimited { get; init; } = true;

    /// <summary>Which memory digests cover: <see cref="DigestMemory.Mapped"/> or <see cref="DigestMemory.Written"/>.</summary>
    public string DigestMemory { get; init; } = Replay.DigestMemory.Mapped;

    public string Recorder { get; init; } = "p2preplay";
}

/// <summary>How the recorded run ended.</summary>
public sealed record LogTrailer
{
    public required long Exits { get; init; }

    public required long Events { get; init; }

    public required long Digests { get; init; }

    /// <summary>Exit code, or 128+signal.</summary>
    public required int Status { get; init; }

    public int Signal { get; init; }
}

[JsonSourceGenerationOptions(WriteIndented = false, PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(LogHeader))]
[JsonSerializable(typeof(LogTrailer))]
internal sealed partial class LogJsonContext : JsonSerializerContext;
