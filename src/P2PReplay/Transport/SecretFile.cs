namespace P2PReplay.Transport;

/// <summary>Thrown when a key or secret file is unsafe or unusable; the message says what to do.</summary>
internal sealed class SecretFileException(string message) : IOException(message);

/// <summary>Small secret files (node key, cluster secret): created atomically with mode 0600, refused when others can read them.</summary>
internal static class SecretFile
{
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    private const UnixFileMode GroupOrOther =
        UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute |
        UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    /// <summary>Reads the file after checking its mode; null when it does not exist.</summary>
    public static byte[]? ReadIfExists(string path, int expectedLength)
    {
        if (OperatingSystem.IsWindows()) throw new PlatformNotSupportedException("Secret files need Unix file modes.");
        if (!File.Exists(path)) return null;
        UnixFileMode mode = File.GetUnixFileMode(path);
        if ((mode & GroupOrOther) != 0)
        {
            throw new SecretFileException(
                $"{path} is accessible by group or other (mode {Convert.ToString((int)mode, 8).PadLeft(4, '0')}); " +
                $"it holds a secret, so it is not used. Run: chmod 600 {path}");
        }

        byte[] content = File.ReadAllBytes(path);
        if (content.Length != expectedLength)
        {
            throw new SecretFileException($"{path} is {content.Length} bytes, expected {expectedLength}; the file is damaged (move it away to create a new one).");
        }

        return content;
    }

    /// <summary>
    /// Writes the secret to a temporary file created 0600 (never briefly readable by others), flushes it,
    /// then renames it into place. Returns false when the target already exists (a concurrent creator won).
    /// </summary>
    public static bool TryCreate(string path, ReadOnlySpan<byte> content, bool overwrite = false)
    {
        if (OperatingSystem.IsWindows()) throw new PlatformNotSupportedException("Secret files need Unix file modes.");
        string directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(directory);
        string temporary = Path.Combine(directory, $".{Path.GetFileName(path)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        var options = new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.Write,
            UnixCreateMode = OwnerOnly,
        };
        try
        {
            using (var stream = new FileStream(temporary, options))
            {
                stream.Write(content);
                stream.Flush(flushToDisk: true);
            }

            // UnixCreateMode is filtered by the umask, which can only remove bits; set it explicitly anyway.
            File.SetUnixFileMode(temporary, OwnerOnly);
            if (!overwrite && File.Exists(path)) return false;
            File.Move(temporary, path, overwrite);
            return true;
        }
        catch (IOException) when (!overwrite && File.Exists(path))
        {
            return false;
        }
        finally
        {
            if (File.Exists(temporary)) File.Delete(temporary);
        }
    }
}
