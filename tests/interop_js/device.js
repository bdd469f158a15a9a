#!/usr/bin/env node
/*
 * A device program in the style of the seed's TypeScript samples (`yarn provision`,
 * `yarn uploadObservation`, `yarn uploadFile`), written only against the public API of the
 * official AWS IoT Device SDK v2 for JavaScript (aws-iot-device-sdk-v2). Nothing in it knows it
 * talks to Lantern rather than AWS IoT Core: point --endpoint/--port/--ca at the server.
 *
 *   node device.js provision --claimCert=FILE --claimKey=FILE --serialNumber=12345 \
 *       --manufacturer=my-company --name=my-device --model=prototype \
 *       [--endpoint=localhost[:8883]] [--port=8883] [--ca=FILE] [--certs-dir=./certs] \
 *       [--template=DefaultProvisioningTemplate] [--csr=FILE --csrKey=FILE] [--mqtt5]
 *     writes <certs-dir>/<thingName>.pem and .key (0600), prints {"thingName": ...}
 *
 *   node device.js upload-observation --deviceName=NAME --payloadValue=100 [--unit=%] \
 *       [--code=...] [--codeSystem=...] [--codeDisplay=...] [--patientId=...] \
 *       [--cert=FILE --key=FILE | --certs-dir=DIR] [--endpoint ...] [--port ...] [--ca ...]
 *     prints {"observationId": ..., "timestamp": ..., "sessionPresent": ...}
 *
 *   node device.js upload-link --deviceName=NAME --fileName=x.txt --contentType=text/plain \
 *       [--filePath=FILE | --content=TEXT] [--cert/--key/--certs-dir/--endpoint/--port/--ca]
 *     prints {"status": 201, "fileId": ..., "sessionPresent": ..., "response": {...}}
 *
 *   Device connections use MQTT 3.1.1 with client id = thing name and the builder's default
 *   persistent session (--clean-session for a clean one); `provision` uses a clean session, and
 *   IotIdentityClient over MQTT 3.1.1, or IotIdentityClientv2 over MQTT 5 with --mqtt5.
 *
 * Any /rejected reply, refused connection or timeout (--timeout seconds, default 20) prints
 * "error: ..." on stderr and exits 1 (2 for a usage error).
 */
'use strict';

const fs = require('fs');
const path = require('path');
const { parseArgs } = require('util');
const { iot, mqtt, mqtt5, iotidentity } = require('aws-iot-device-sdk-v2');

class DeviceError extends Error {}
class UsageError extends Error {}

const OPTIONS = {
    // connection
    endpoint: { type: 'string', default: 'localhost' },
    port: { type: 'string' },
    ca: { type: 'string' },
    'certs-dir': { type: 'string', default: './certs' },
    cert: { type: 'string' },
    key: { type: 'string' },
    clientId: { type: 'string' },
    timeout: { type: 'string', default: '20' },
    mqtt5: { type: 'boolean', default: false },
    'clean-session': { type: 'boolean', default: false },
    // provision
    claimCert: { type: 'string' },
    claimKey: { type: 'string' },
    serialNumber: { type: 'string' },
    manufacturer: { type: 'string' },
    name: { type: 'string' },
    model: { type: 'string' },
    template: { type: 'string', default: 'DefaultProvisioningTemplate' },
    csr: { type: 'string' },
    csrKey: { type: 'string' },
    // upload-observation
    deviceName: { type: 'string' },
    payloadValue: { type: 'string' },
    value: { type: 'string' },
    unit: { type: 'string', default: '%' },
    code: { type: 'string', default: '9750d5e5-d766-4793-a97d-16179578cc4d' },
    codeSystem: { type: 'string', default: 'http://lifeomic.com/fhir/devices' },
    codeDisplay: { type: 'string', default: 'Battery Percentage' },
    patientId: { type: 'string' },
    // upload-link
    fileName: { type: 'string' },
    contentType: { type: 'string' },
    filePath: { type: 'string' },
    content: { type: 'string' },
};

function required(args, ...names) {
    for (const name of names) {
        if (args[name] === undefined || args[name] === '') {
            throw new UsageError(`--${name} is required`);
        }
    }
}

function readable(file, option) {
    if (!fs.existsSync(file)) {
        throw new UsageError(`--${option}: ${file} does not exist`);
    }
    return file;
}

/** `--endpoint host:port` or `--endpoint host --port N` (default port 8883, as AWS IoT). */
function endpointOf(args) {
    let host = args.endpoint;
    let port = 8883;
    const match = /^(.*):(\d+)$/.exec(host);
    if (match) {
        host = match[1];
        port = Number(match[2]);
    }
    if (args.port !== undefined) {
        port = Number(args.port);
    }
    if (!Number.isInteger(port) || port <= 0 || port > 65535) {
        throw new UsageError(`--port: not a port: ${args.port}`);
    }
    return { host, port };
}

function timeoutMs(args) {
    const seconds = Number(args.timeout);
    if (!(seconds > 0)) {
        throw new UsageError(`--timeout: not a number of seconds: ${args.timeout}`);
    }
    return seconds * 1000;
}

/** Resolve with `promise`, or reject with a DeviceError naming `what` after `ms`. */
function within(ms, what, promise) {
    let timer;
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(
            () => reject(new DeviceError(`timed out after ${ms / 1000} s waiting for ${what}`)),
            ms
        );
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function describeRejection(topic, error) {
    return (
        `rejected on ${topic}: statusCode=${error.statusCode} ` +
        `errorCode=${error.errorCode} errorMessage=${error.errorMessage}`
    );
}

/** A one-shot answer: the first accepted or rejected message settles it. */
function answer() {
    let settle;
    let fail;
    const promise = new Promise((resolve, reject) => {
        settle = resolve;
        fail = reject;
    });
    promise.catch(() => {}); // observed later through within(); never an unhandled rejection
    return { promise, settle, fail };
}

// -- connections ----------------------------------------------------------------------------

async function connect311(args, certPath, keyPath, clientId, cleanSession) {
    const { host, port } = endpointOf(args);
    const builder = iot.AwsIotMqttConnectionConfigBuilder.new_mtls_builder_from_path(
        certPath,
        keyPath
    );
    if (args.ca) {
        builder.with_certificate_authority_from_path(undefined, readable(args.ca, 'ca'));
    }
    builder
        .with_endpoint(host)
        .with_port(port)
        .with_client_id(clientId)
        .with_keep_alive_seconds(60);
    if (cleanSession) {
        // Otherwise the builder's default: a persistent session (clean session = false).
        builder.with_clean_session(true);
    }
    const client = new mqtt.MqttClient();
    const connection = client.new_connection(builder.build());
    connection.on('error', () => {}); // connect() below rejects with the reason
    const ms = timeoutMs(args);
    try {
        connection.sessionPresent = await within(
            ms,
            `the CONNACK from ${host}:${port}`,
            connection.connect()
        );
    } catch (error) {
        await connection.disconnect().catch(() => {});
        // The CRT's MQTT 3.1.1 client reports every refusing CONNACK (e.g. return code 5, not
        // authorized) as AWS_ERROR_MQTT_PROTOCOL_ERROR; its message carries no return code.
        throw new DeviceError(
            `cannot connect to ${host}:${port} as ${clientId}: ${error.message || error}`
        );
    }
    return connection;
}

async function connect5(args, certPath, keyPath, clientId) {
    const { host, port } = endpointOf(args);
    const builder = iot.AwsIotMqtt5ClientConfigBuilder.newDirectMqttBuilderWithMtlsFromPath(
        host,
        certPath,
        keyPath
    );
    if (args.ca) {
        builder.withCertificateAuthorityFromPath(undefined, readable(args.ca, 'ca'));
    }
    builder
        .withPort(port)
        .withConnectProperties({ clientId, keepAliveIntervalSeconds: 60 })
        .withSessionBehavior(mqtt5.ClientSessionBehavior.Clean);
    const client = new mqtt5.Mqtt5Client(builder.build());
    const connected = new Promise((resolve, reject) => {
        client.once('connectionSuccess', resolve);
        client.once('connectionFailure', (event) => {
            const connack = event.connack;
            const reason =
                connack && connack.reasonCode !== undefined
                    ? `CONNACK reason 0x${connack.reasonCode.toString(16)}: `
                    : '';
            reject(new DeviceError(`${reason}${event.error.message || event.error}`));
        });
    });
    client.on('error', () => {});
    client.start();
    try {
        await within(timeoutMs(args), `the CONNACK from ${host}:${port}`, connected);
    } catch (error) {
        await stop5(client);
        throw new DeviceError(
            `cannot connect to ${host}:${port} as ${clientId}: ${error.message || error}`
        );
    }
    return client;
}

function stop5(client) {
    return new Promise((resolve) => {
        client.once('stopped', resolve);
        client.stop();
    }).then(() => client.close());
}

// -- provision ------------------------------------------------------------------------------

/** Subscribe to accepted and rejected (exact topics, QoS 1), then publish the request. */
async function identityCall(args, what, subscribeAccepted, subscribeRejected, publish) {
    const reply = answer();
    const ms = timeoutMs(args);
    const onAccepted = (error, response) =>
        error ? reply.fail(new DeviceError(`${what}: ${error.message}`)) : reply.settle(response);
    const onRejected = (error, response) =>
        reply.fail(
            new DeviceError(
                error ? `${what}: ${error.message}` : describeRejection(`${what}/rejected`, response)
            )
        );
    for (const [suffix, subscribeTo, handler] of [
        ['accepted', subscribeAccepted, onAccepted],
        ['rejected', subscribeRejected, onRejected],
    ]) {
        const granted = await within(ms, `the SUBACK of ${what}/${suffix}`, subscribeTo(handler));
        checkGranted(`${what}/${suffix}`, granted);
    }
    await within(ms, `the PUBACK of ${what}`, publish());
    return within(ms, `the reply to ${what}`, reply.promise);
}

async function provisionV1(args, parameters, csrPem) {
    const qos = mqtt.QoS.AtLeastOnce;
    const connection = await connect311(
        args,
        args.claimCert,
        args.claimKey,
        args.clientId || `provision-${process.pid}-${Date.now()}`,
        true
    );
    try {
        const identity = new iotidentity.IotIdentityClient(connection);
        let created;
        if (csrPem === undefined) {
            created = await identityCall(
                args,
                '$aws/certificates/create/json',
                (handler) => identity.subscribeToCreateKeysAndCertificateAccepted({}, qos, handler),
                (handler) => identity.subscribeToCreateKeysAndCertificateRejected({}, qos, handler),
                () => identity.publishCreateKeysAndCertificate({}, qos)
            );
        } else {
            created = await identityCall(
                args,
                '$aws/certificates/create-from-csr/json',
                (handler) => identity.subscribeToCreateCertificateFromCsrAccepted({}, qos, handler),
                (handler) => identity.subscribeToCreateCertificateFromCsrRejected({}, qos, handler),
                () =>
                    identity.publishCreateCertificateFromCsr(
                        { certificateSigningRequest: csrPem },
                        qos
                    )
            );
        }
        const templateName = args.template;
        const registered = await identityCall(
            args,
            `$aws/provisioning-templates/${templateName}/provision/json`,
            (handler) => identity.subscribeToRegisterThingAccepted({ templateName }, qos, handler),
            (handler) => identity.subscribeToRegisterThingRejected({ templateName }, qos, handler),
            () =>
                identity.publishRegisterThing(
                    {
                        templateName,
                        certificateOwnershipToken: created.certificateOwnershipToken,
                        parameters,
                    },
                    qos
                )
        );
        return { created, registered };
    } finally {
        await connection.disconnect().catch(() => {});
    }
}

async function provisionV2(args, parameters, csrPem) {
    const client = await connect5(
        args,
        args.claimCert,
        args.claimKey,
        args.clientId || `provision-${process.pid}-${Date.now()}`
    );
    const ms = timeoutMs(args);
    const identity = iotidentity.IotIdentityClientv2.newFromMqtt5(client, {
        maxRequestResponseSubscriptions: 2,
        maxStreamingSubscriptions: 2,
        operationTimeoutInSeconds: ms / 1000,
    });
    const v2 = async (what, call) => {
        try {
            return await within(ms + 1000, `the reply to ${what}`, call());
        } catch (error) {
            if (error.modeledError) {
                throw new DeviceError(describeRejection(`${what}/rejected`, error.modeledError));
            }
            const internal = error.internalError;
            const detail = internal ? ` (${internal.message})` : '';
            throw new DeviceError(`${what}: ${error.message || error}${detail}`);
        }
    };
    try {
        const created =
            csrPem === undefined
                ? await v2('$aws/certificates/create/json', () =>
                      identity.createKeysAndCertificate({})
                  )
                : await v2('$aws/certificates/create-from-csr/json', () =>
                      identity.createCertificateFromCsr({ certificateSigningRequest: csrPem })
                  );
        const registered = await v2(
            `$aws/provisioning-templates/${args.template}/provision/json`,
            () =>
                identity.registerThing({
                    templateName: args.template,
                    certificateOwnershipToken: created.certificateOwnershipToken,
                    parameters,
                })
        );
        return { created, registered };
    } finally {
        identity.close();
        await stop5(client);
    }
}

async function provision(args) {
    required(args, 'claimCert', 'claimKey', 'serialNumber', 'manufacturer', 'name', 'model');
    readable(args.claimCert, 'claimCert');
    readable(args.claimKey, 'claimKey');
    let csrPem;
    if (args.csr !== undefined) {
        required(args, 'csrKey');
        csrPem = fs.readFileSync(readable(args.csr, 'csr'), 'utf8');
        readable(args.csrKey, 'csrKey');
    }
    const parameters = {
        SerialNumber: args.serialNumber,
        Manufacturer: args.manufacturer,
        Name: args.name,
        Model: args.model,
    };
    const run = args.mqtt5 ? provisionV2 : provisionV1;
    const { created, registered } = await run(args, parameters, csrPem);
    const thingName = registered.thingName;
    if (!thingName) {
        throw new DeviceError(`RegisterThing accepted without a thingName: ${JSON.stringify(registered)}`);
    }
    const privateKey =
        csrPem === undefined ? created.privateKey : fs.readFileSync(args.csrKey, 'utf8');
    const certsDir = args['certs-dir'];
    fs.mkdirSync(certsDir, { recursive: true });
    const certFile = path.join(certsDir, `${thingName}.pem`);
    const keyFile = path.join(certsDir, `${thingName}.key`);
    fs.writeFileSync(certFile, created.certificatePem);
    fs.writeFileSync(keyFile, privateKey, { mode: 0o600 });
    fs.chmodSync(keyFile, 0o600);
    return {
        thingName,
        certificateId: created.certificateId,
        deviceConfiguration: registered.deviceConfiguration || {},
        certificate: certFile,
        privateKey: keyFile,
    };
}

// -- device data ----------------------------------------------------------------------------

async function connectDevice(args) {
    required(args, 'deviceName');
    const cert = args.cert || path.join(args['certs-dir'], `${args.deviceName}.pem`);
    const key = args.key || path.join(args['certs-dir'], `${args.deviceName}.key`);
    readable(cert, 'cert');
    readable(key, 'key');
    // As AWS IoT expects of a provisioned device: client id = thing name.
    return connect311(args, cert, key, args.clientId || args.deviceName, args['clean-session']);
}

/**
 * Subscribe to `accepted` and `rejected`, publish `payload` QoS 1 to `topic`, wait for the
 * first message on either. Returns the accepted message's JSON.
 */
async function ruleCall(args, connection, topic, payload, accepted, rejected) {
    const ms = timeoutMs(args);
    const qos = mqtt.QoS.AtLeastOnce;
    const reply = answer();
    const json = (body) => JSON.parse(Buffer.from(body).toString('utf8'));
    const onAccepted = (_topic, body) => {
        try {
            reply.settle(json(body));
        } catch (error) {
            reply.fail(new DeviceError(`${accepted}: not JSON: ${error.message}`));
        }
    };
    const onRejected = (_topic, body) => {
        let error;
        try {
            error = json(body);
        } catch {
            error = { errorMessage: Buffer.from(body).toString('utf8') };
        }
        reply.fail(new DeviceError(describeRejection(rejected, error)));
    };
    await subscribe(connection, ms, accepted, qos, onAccepted);
    await subscribe(connection, ms, rejected, qos, onRejected);
    await within(ms, `the PUBACK of ${topic}`, connection.publish(topic, JSON.stringify(payload), qos));
    return within(ms, `a reply on ${accepted} or ${rejected}`, reply.promise);
}

async function subscribe(connection, ms, topic, qos, handler) {
    const granted = await within(
        ms,
        `the SUBACK of ${topic}`,
        connection.subscribe(topic, qos, handler).catch((error) => {
            throw new DeviceError(`subscription to ${topic} failed: ${error.message || error}`);
        })
    );
    checkGranted(topic, granted);
}

/** An MQTT 3.1.1 SUBACK return code 0x80 (failure) arrives as a granted qos of 128. */
function checkGranted(topic, granted) {
    if (granted.error_code || granted.qos === 128) {
        throw new DeviceError(`subscription to ${topic} refused (SUBACK 0x80)`);
    }
}

async function uploadObservation(args) {
    const value = args.payloadValue !== undefined ? args.payloadValue : args.value;
    if (value === undefined) {
        throw new UsageError('--payloadValue (or --value) is required');
    }
    const payload = {
        value,
        unit: args.unit,
        coding: [{ code: args.code, system: args.codeSystem, display: args.codeDisplay }],
    };
    if (args.patientId !== undefined) {
        payload.patientId = args.patientId;
    }
    const connection = await connectDevice(args);
    try {
        const thing = args.deviceName;
        const reply = await ruleCall(
            args,
            connection,
            '$aws/rules/FHIRIngest',
            payload,
            `${thing}/FHIRIngest/accepted`,
            `${thing}/FHIRIngest/rejected`
        );
        if (!reply.observationId) {
            throw new DeviceError(`FHIRIngest accepted without an observationId: ${JSON.stringify(reply)}`);
        }
        return { ...reply, sessionPresent: connection.sessionPresent };
    } finally {
        await connection.disconnect().catch(() => {});
    }
}

async function uploadLink(args) {
    required(args, 'fileName', 'contentType');
    let body;
    if (args.filePath !== undefined) {
        body = fs.readFileSync(readable(args.filePath, 'filePath'));
    } else {
        body = Buffer.from(args.content !== undefined ? args.content : 'hello from a JS device\n');
    }
    const connection = await connectDevice(args);
    let link;
    const sessionPresent = connection.sessionPresent;
    try {
        const thing = args.deviceName;
        // The link arrives on the topic named exactly as the device (seed 000, docs/device-topics.md).
        link = await ruleCall(
            args,
            connection,
            '$aws/rules/CreateFileUploadLink',
            { fileName: args.fileName, contentType: args.contentType },
            thing,
            `${thing}/CreateFileUploadLink/rejected`
        );
    } finally {
        await connection.disconnect().catch(() => {});
    }
    if (!link.uploadUrl) {
        throw new DeviceError(`CreateFileUploadLink reply without an uploadUrl: ${JSON.stringify(link)}`);
    }
    const response = await within(
        timeoutMs(args),
        `PUT ${link.uploadUrl}`,
        fetch(link.uploadUrl, {
            method: 'PUT',
            body,
            headers: { 'Content-Type': args.contentType },
        })
    );
    const text = await response.text();
    let parsed;
    try {
        parsed = JSON.parse(text);
    } catch {
        parsed = text;
    }
    if (!response.ok) {
        throw new DeviceError(`PUT ${link.uploadUrl} answered ${response.status}: ${text}`);
    }
    return {
        status: response.status,
        fileId: link.fileId,
        size: body.length,
        sessionPresent,
        response: parsed,
    };
}

// -- main -----------------------------------------------------------------------------------

const COMMANDS = {
    provision,
    'upload-observation': uploadObservation,
    'upload-link': uploadLink,
};

async function main(argv) {
    const [command, ...rest] = argv;
    const run = COMMANDS[command];
    if (run === undefined) {
        throw new UsageError(`usage: device.js ${Object.keys(COMMANDS).join('|')} [--option=value ...]`);
    }
    let args;
    try {
        args = parseArgs({ args: rest, options: OPTIONS, strict: true, allowPositionals: false }).values;
    } catch (error) {
        throw new UsageError(error.message);
    }
    return run(args);
}

main(process.argv.slice(2)).then(
    (result) => {
        process.stdout.write(`${JSON.stringify(result)}\n`);
        process.exit(0);
    },
    (error) => {
        const known = error instanceof DeviceError || error instanceof UsageError;
        process.stderr.write(`error: ${known ? error.message : error.stack || error}\n`);
        process.exit(error instanceof UsageError ? 2 : 1);
    }
);
