// An OCPP 2.0.1 charging station built on the independent npm package `ocpp-rpc`, driven by
// the evgrid tests over stdin/stdout.
//
// Usage: node node_charger.js <ws-url> <station-id> <accept|reject> <power-watts>
// stdin commands: power <W> | disconnect | reconnect | quit
// stdout events:  BOOTED | SET <limit> <unit> | CLEAR <id> | CLOSED | ERROR <text>
const { RPCClient } = require('ocpp-rpc');
const readline = require('readline');

const [url, id, mode, power] = process.argv.slice(2);
let powerW = Number(power);
let limitW = null;
let client = null;
let txn = `tx-${id}-${Date.now()}`;
const say = (line) => process.stdout.write(line + '\n');

async function connect() {
  const c = new RPCClient({ endpoint: url, identity: id, protocols: ['ocpp2.0.1'],
                            strictMode: true, reconnect: false });
  c.handle('SetChargingProfile', ({ params }) => {
    const schedule = params.chargingProfile.chargingSchedule[0];
    const limit = schedule.chargingSchedulePeriod[0].limit;
    say(`SET ${limit} ${schedule.chargingRateUnit}`);
    if (mode !== 'accept') {
      return { status: 'Rejected', statusInfo: { reasonCode: 'NoCapacity',
               additionalInfo: 'site limit lower' } };
    }
    limitW = schedule.chargingRateUnit === 'A' ? limit * 230 * 3 : limit;
    return { status: 'Accepted' };
  });
  c.handle('ClearChargingProfile', ({ params }) => {
    say(`CLEAR ${params.chargingProfileId}`);
    limitW = null;
    return { status: 'Accepted' };
  });
  c.on('close', () => say('CLOSED'));
  await c.connect();
  client = c;
  await c.call('BootNotification', { reason: 'PowerUp',
    chargingStation: { vendorName: 'evgrid-test', model: 'NodeCharger' } });
  await c.call('TransactionEvent', { eventType: 'Started', timestamp: new Date().toISOString(),
    triggerReason: 'CablePluggedIn', seqNo: 0, transactionInfo: { transactionId: txn },
    evse: { id: 1, connectorId: 1 } });
  say('BOOTED');
}

let seq = 1;
setInterval(async () => {
  if (!client || client.state !== 1) return;
  const w = limitW === null ? powerW : Math.min(powerW, limitW);
  try {
    await client.call('TransactionEvent', { eventType: 'Updated',
      timestamp: new Date().toISOString(), triggerReason: 'MeterValuePeriodic', seqNo: seq++,
      transactionInfo: { transactionId: txn },
      meterValue: [{ timestamp: new Date().toISOString(), sampledValue: [
        { value: w / 1000, measurand: 'Power.Active.Import',
          unitOfMeasure: { unit: 'W', multiplier: 3 } },
        { value: 1, measurand: 'Energy.Active.Import.Register',
          unitOfMeasure: { unit: 'kWh' } }] }] });
  } catch (e) { say(`ERROR meter ${e.message}`); }
}, 1000);

readline.createInterface({ input: process.stdin }).on('line', async (line) => {
  const [cmd, arg] = line.trim().split(' ');
  try {
    if (cmd === 'power') powerW = Number(arg);
    else if (cmd === 'disconnect') { const c = client; client = null; await c.close(); }
    else if (cmd === 'reconnect') await connect();
    else if (cmd === 'quit') { if (client) await client.close(); process.exit(0); }
  } catch (e) { say(`ERROR ${e.message}`); }
}).on('close', () => process.exit(0));

connect().catch((e) => { say(`ERROR connect ${e.message}`); process.exit(1); });
