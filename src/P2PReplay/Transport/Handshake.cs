using System.Buffers.Binary;
using System.Security.Cryptography;
using NSec.Cryptography;

namespace P2PReplay.Transport;

/// <summary>What a completed handshake established: who the peer is and one session key per direction.</summary>
internal sealed class HandshakeResult(byte[] remotePublicKey, string remoteListenAddress, byte[] sendKey, byte[] receiveKey, bool isInitiator)
{
    public byte[] RemotePublicKey { get; } = remotePublicKey;

    public string RemoteNodeId { get; } = NodeIdentity.NodeIdOf(remotePublicKey);

    public ulong RemoteNumericId { get; } = NodeIdentity.NumericIdOf(remotePublicKey);

    /// <summary>The initiator's advertised "host:port" (empty when it does not listen, or on the initiator side).</summary>
    public string RemoteListenAddress { get; } = remoteListenAddress;

    public bool IsInitiator { get; } = isInitiator;

    internal byte[] SendKey { get; } = sendKey;

    internal byte[] ReceiveKey { get; } = receiveKey;
}

/// <summary>
/// The mutual 3-message handshake (see HandshakeMessages for the layout).
/// Keys: HKDF-SHA256(IKM = X25519(ephemerals), salt = cluster secret, info = label | H2) gives four 32-byte keys:
/// initiator→responder, responder→initiator, responder MAC, initiator MAC. H2 = SHA-256(label | hello | reply head).
/// The hello carries a MAC keyed by HKDF(cluster secret) so a peer without the secret is refused before any
/// public-key work; the reply and finish carry MACs keyed from the DH and secret, and Ed25519 signatures over
/// the transcript hashes. The finish signs H3 = SHA-256(H2 | reply signature | reply MAC), which binds the
/// responder's fresh ephemeral: a recorded finish can never complete a new handshake.
/// </summary>
internal static class Handshake
{
    private static readonly byte[] HelloMacLabel = "p2preplay/v1/hello-mac"u8.ToArray();
    private static readonly byte[] TranscriptLabel = "p2preplay/v1/transcript"u8.ToArray();
    private static readonly byte[] KeysLabel = "p2preplay/v1/keys"u8.ToArray();
    private static readonly byte[] ResponderSignatureLabel = "p2preplay/v1/responder"u8.ToArray();
    private static readonly byte[] InitiatorSignatureLabel = "p2preplay/v1/initiator"u8.ToArray();

    public static async Task<HandshakeResult> InitiateAsync(Stream stream, PeerContext context, string listenAddress, string? expectedRemoteNodeId, CancellationToken cancellationToken)
    {
        using var timeout = new TimeoutScope(context.Options.HandshakeTimeout, context.Time, cancellationToken);
        try
        {
            using Key ephemeral = CreateEphemeral(context.Random);
            byte[] ephemeralPublic = ephemeral.PublicKey.Export(KeyBlobFormat.RawPublicKey);
            byte[] nonce = new byte[HandshakeMessages.NonceLength];
            context.Random.Fill(nonce);
            long now = context.Time.GetUtcNow().ToUnixTimeMilliseconds();
            byte[] helloHead = HandshakeMessages.EncodeHelloUnmaced(now, nonce, ephemeralPublic, context.Identity.PublicKey, listenAddress);
            byte[] hello = [.. helloHead, .. HelloMac(context.Secret, helloHead)];
            await WriteMessageAsync(stream, hello, timeout.Token).ConfigureAwait(false);

            byte[] replyBody = await ReadMessageAsync(stream, timeout.Token).ConfigureAwait(false);
            HandshakeMessages.Reply reply = HandshakeMessages.ParseReply(replyBody);
            byte[] h2 = TranscriptHash(hello, replyBody.AsSpan(0, 1 + 2 * HandshakeMessages.KeyLength));
            SessionSecrets keys = DeriveKeys(ephemeral, reply.Ephemeral, context.Secret, h2);
            if (!CryptographicOperations.FixedTimeEquals(Mac(keys.ResponderMac, h2, reply.Signature), reply.Mac))
            {
                throw new HandshakeException(HandshakeFailure.WrongClusterSecret, "reply MAC does not verify (peer lacks our cluster secret)");
            }

            if (!NodeIdentity.Verify(reply.Identity, [.. ResponderSignatureLabel, .. h2], reply.Signature))
            {
                throw new HandshakeException(HandshakeFailure.BadSignature, "reply signature does not verify");
            }

            string remoteNodeId = NodeIdentity.NodeIdOf(reply.Identity);
            if (expectedRemoteNodeId is not null && !string.Equals(remoteNodeId, expectedRemoteNodeId, StringComparison.Ordinal))
            {
                throw new HandshakeException(HandshakeFailure.UnexpectedPeer, $"expected node {expectedRemoteNodeId}, peer is {remoteNodeId}");
            }

            byte[] h3 = SHA256.HashData([.. h2, .. reply.Signature, .. reply.Mac]);
            byte[] signature = context.Identity.Sign([.. InitiatorSignatureLabel, .. h3]);
            byte[] finish = [HandshakeMessages.FinishType, .. signature, .. Mac(keys.InitiatorMac, h3, signature)];
            await WriteMessageAsync(stream, finish, timeout.Token).ConfigureAwait(false);
            context.Counters.HandshakeCompleted();
            return new HandshakeResult(reply.Identity, "", keys.InitiatorToResponder, keys.ResponderToInitiator, isInitiator: true);
        }
        catch (Exception e) when (Translate(e, timeout, cancellationToken) is { } failure)
        {
            throw failure;
        }
    }

    public static async Task<HandshakeResult> RespondAsync(Stream stream, PeerContext context, CancellationToken cancellationToken)
    {
        using var timeout = new TimeoutScope(context.Options.HandshakeTimeout, context.Time, cancellationToken);
        try
        {
            HandshakeMessages.Hello hello;
            byte[] helloBody = await ReadMessageAsync(stream, timeout.Token).ConfigureAwait(false);
            try
            {
                hello = HandshakeMessages.ParseHello(helloBody);
                if (!CryptographicOperations.FixedTimeEquals(HelloMac(context.Secret, helloBody.AsSpan(0, hello.MacedLength)), hello.Mac))
                {
                    throw new HandshakeException(HandshakeFailure.WrongClusterSecret, "hello MAC does not verify (peer lacks our cluster secret)");
                }

                DateTimeOffset sent = DateTimeOffset.FromUnixTimeMilliseconds(Math.Clamp(hello.TimestampMs, -62135596800000L, 253402300799999L));
                TimeSpan skew = (context.Time.GetUtcNow() - sent).Duration();
                if (skew > context.Options.MaxClockSkew)
                {
                    throw new HandshakeException(HandshakeFailure.Stale, $"stale handshake: hello timestamp is {skew.TotalSeconds:F0} s from our clock");
                }

                if (!context.ReplayCache.TryAdd(hello.Ephemeral, hello.Nonce))
                {
                    throw new HandshakeException(HandshakeFailure.Replayed, "replayed handshake: this hello was seen before");
                }
            }
            catch (HandshakeException e)
            {
                await TrySendRefusalAsync(stream, e.Reason, timeout.Token).ConfigureAwait(false);
                throw;
            }

            using Key ephemeral = CreateEphemeral(context.Random);
            byte[] replyHead = [HandshakeMessages.ReplyType, .. ephemeral.PublicKey.Export(KeyBlobFormat.RawPublicKey), .. context.Identity.PublicKey];
            byte[] h2 = TranscriptHash(helloBody, replyHead);
            SessionSecrets keys = DeriveKeys(ephemeral, hello.Ephemeral, context.Secret, h2);
            byte[] signature = context.Identity.Sign([.. ResponderSignatureLabel, .. h2]);
            byte[] mac = Mac(keys.ResponderMac, h2, signature);
            await WriteMessageAsync(stream, [.. replyHead, .. signature, .. mac], timeout.Token).ConfigureAwait(false);

            byte[] finishBody = await ReadMessageAsync(stream, timeout.Token).ConfigureAwait(false);
            HandshakeMessages.Finish finish = HandshakeMessages.ParseFinish(finishBody);
            byte[] h3 = SHA256.HashData([.. h2, .. signature, .. mac]);
            if (!NodeIdentity.Verify(hello.Identity, [.. InitiatorSignatureLabel, .. h3], finish.Signature))
            {
                throw new HandshakeException(HandshakeFailure.BadSignature, "finish signature does not verify (replayed or forged handshake)");
            }

            if (!CryptographicOperations.FixedTimeEquals(Mac(keys.InitiatorMac, h3, finish.Signature), finish.Mac))
            {
                throw new HandshakeException(HandshakeFailure.WrongClusterSecret, "finish MAC does not verify");
            }

            context.Counters.HandshakeCompleted();
            return new HandshakeResult(hello.Identity, hello.ListenAddress, keys.ResponderToInitiator, keys.InitiatorToResponder, isInitiator: false);
        }
        catch (Exception e) when (Translate(e, timeout, cancellationToken) is { } failure)
        {
            throw failure;
        }
    }

    /// <summary>Reads one length-prefixed handshake message (bounded size).</summary>
    internal static async Task<byte[]> ReadMessageAsync(Stream stream, CancellationToken cancellationToken)
    {
        byte[] header = new byte[2];
        if (await stream.ReadAtLeastAsync(header, 2, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false) < 2)
        {
            throw new HandshakeException(HandshakeFailure.ConnectionClosed, "connection closed during the handshake");
        }

        int length = BinaryPrimitives.ReadUInt16BigEndian(header);
        if (length is 0 or > HandshakeMessages.MaxMessageLength) throw new HandshakeException(HandshakeFailure.Malformed, $"handshake message length {length} is out of range");
        byte[] body = new byte[length];
        if (await stream.ReadAtLeastAsync(body, length, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false) < length)
        {
            throw new HandshakeException(HandshakeFailure.ConnectionClosed, "connection closed in the middle of a handshake message");
        }

        return body;
    }

    internal static async Task WriteMessageAsync(Stream stream, byte[] body, CancellationToken cancellationToken)
    {
        byte[] message = new byte[2 + body.Length];
        BinaryPrimitives.WriteUInt16BigEndian(message, (ushort)body.Length);
        body.CopyTo(message, 2);
        await stream.WriteAsync(message, cancellationToken).ConfigureAwait(false);
        await stream.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    private static async Task TrySendRefusalAsync(Stream stream, HandshakeFailure reason, CancellationToken cancellationToken)
    {
        try
        {
            await WriteMessageAsync(stream, HandshakeMessages.EncodeRefusal(reason), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or NotSupportedException)
        {
            // The refusal is a courtesy; the connection is closed either way.
        }
    }

    /// <summary>Maps I/O failures and the handshake timeout to HandshakeException; the caller's own cancellation passes through.</summary>
    private static HandshakeException? Translate(Exception e, TimeoutScope timeout, CancellationToken cancellationToken) => e switch
    {
        HandshakeException => null,
        OperationCanceledException when cancellationToken.IsCancellationRequested => null,
        OperationCanceledException when timeout.TimedOut => new HandshakeException(HandshakeFailure.Timeout, "handshake did not complete in time"),
        IOException or ObjectDisposedException or System.Net.Sockets.SocketException => new HandshakeException(HandshakeFailure.ConnectionClosed, $"connection failed during the handshake: {e.Message}"),
        _ => null,
    };

    private static Key CreateEphemeral(ISecureRandom random)
    {
        Span<byte> seed = stackalloc byte[32];
        try
        {
            random.Fill(seed);
            return Key.Import(KeyAgreementAlgorithm.X25519, seed, KeyBlobFormat.RawPrivateKey);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(seed);
        }
    }

    internal static byte[] HelloMac(ClusterSecret secret, ReadOnlySpan<byte> helloHead)
    {
        Span<byte> key = stackalloc byte[32];
        HKDF.DeriveKey(HashAlgorithmName.SHA256, secret.Bytes, key, salt: HelloMacLabel, info: default);
        return HMACSHA256.HashData(key, helloHead);
    }

    private static byte[] Mac(byte[] key, ReadOnlySpan<byte> transcriptHash, ReadOnlySpan<byte> signature)
    {
        byte[] data = [.. transcriptHash, .. signature];
        return HMACSHA256.HashData(key, data);
    }

    private static byte[] TranscriptHash(ReadOnlySpan<byte> hello, ReadOnlySpan<byte> replyHead) => SHA256.HashData([.. TranscriptLabel, .. hello, .. replyHead]);

    private static SessionSecrets DeriveKeys(Key ephemeral, byte[] remoteEphemeral, ClusterSecret secret, byte[] h2)
    {
        if (!PublicKey.TryImport(KeyAgreementAlgorithm.X25519, remoteEphemeral, KeyBlobFormat.RawPublicKey, out PublicKey? remote) || remote is null)
        {
            throw new HandshakeException(HandshakeFailure.Malformed, "peer's ephemeral key is invalid");
        }

        // Agree returns null for low-order points (an all-zero shared secret).
        using SharedSecret shared = KeyAgreementAlgorithm.X25519.Agree(ephemeral, remote)
            ?? throw new HandshakeException(HandshakeFailure.Malformed, "peer's ephemeral key is a low-order point");
        byte[] material = KeyDerivationAlgorithm.HkdfSha256.DeriveBytes(shared, secret.Bytes, [.. KeysLabel, .. h2], 128);
        return new SessionSecrets(material[..32], material[32..64], material[64..96], material[96..128]);
    }

    private sealed record SessionSecrets(byte[] InitiatorToResponder, byte[] ResponderToInitiator, byte[] ResponderMac, byte[] InitiatorMac);
}
