// An OCPP 1.6J charger built on the independent Java library eu.chargetime.ocpp:v1_6
// (ChargeTimeEU Java-OCA-OCPP), driven by the evgrid tests over stdin/stdout.
//
// Usage: JavaCharger <ws-url> <charge-point-id> <accept|reject> <power-watts>
// stdin commands: power <W> | disconnect | reconnect | quit
// stdout events:  BOOTED | SET <limit> <unit> | CLEAR <id> | CLOSED | ERROR <text>
import eu.chargetime.ocpp.ClientEvents;
import eu.chargetime.ocpp.JSONClient;
import eu.chargetime.ocpp.feature.profile.ClientCoreEventHandler;
import eu.chargetime.ocpp.feature.profile.ClientCoreProfile;
import eu.chargetime.ocpp.feature.profile.ClientSmartChargingEventHandler;
import eu.chargetime.ocpp.feature.profile.ClientSmartChargingProfile;
import eu.chargetime.ocpp.model.core.*;
import eu.chargetime.ocpp.model.smartcharging.*;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.time.ZonedDateTime;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

public class JavaCharger {
    static String url, id;
    static boolean accept;
    static volatile double powerW;
    static volatile Double limitW = null;
    static volatile JSONClient client;
    static volatile boolean open = false;
    static volatile boolean booted = false;
    static volatile boolean booting = false;
    static ClientCoreProfile core;

    static synchronized void say(String line) {
        System.out.println(line);
        System.out.flush();
    }

    public static void main(String[] args) throws Exception {
        url = args[0];
        id = args[1];
        accept = args[2].equals("accept");
        powerW = Double.parseDouble(args[3]);
        core = new ClientCoreProfile(new ClientCoreEventHandler() {
            public ChangeAvailabilityConfirmation handleChangeAvailabilityRequest(ChangeAvailabilityRequest r) { return null; }
            public GetConfigurationConfirmation handleGetConfigurationRequest(GetConfigurationRequest r) { return null; }
            public ChangeConfigurationConfirmation handleChangeConfigurationRequest(ChangeConfigurationRequest r) { return null; }
            public ClearCacheConfirmation handleClearCacheRequest(ClearCacheRequest r) { return null; }
            public DataTransferConfirmation handleDataTransferRequest(DataTransferRequest r) { return null; }
            public RemoteStartTransactionConfirmation handleRemoteStartTransactionRequest(RemoteStartTransactionRequest r) { return null; }
            public RemoteStopTransactionConfirmation handleRemoteStopTransactionRequest(RemoteStopTransactionRequest r) { return null; }
            public ResetConfirmation handleResetRequest(ResetRequest r) { return null; }
            public UnlockConnectorConfirmation handleUnlockConnectorRequest(UnlockConnectorRequest r) { return null; }
        });
        connect();
        ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor();
        timer.scheduleAtFixedRate(JavaCharger::meter, 1, 1, TimeUnit.SECONDS);
        timer.scheduleAtFixedRate(JavaCharger::bootIfNeeded, 100, 200, TimeUnit.MILLISECONDS);
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        String line;
        while ((line = in.readLine()) != null) {
            String[] parts = line.trim().split(" ");
            switch (parts[0]) {
                case "power": powerW = Double.parseDouble(parts[1]); break;
                case "disconnect": open = false; client.disconnect(); break;
                case "reconnect": connect(); break;
                case "quit": timer.shutdownNow(); if (open) client.disconnect(); System.exit(0);
                default: say("ERROR unknown command " + line);
            }
        }
        System.exit(0);
    }

    static void connect() {
        JSONClient c = new JSONClient(core, id);
        c.addFeatureProfile(new ClientSmartChargingProfile(new ClientSmartChargingEventHandler() {
            public SetChargingProfileConfirmation handleSetChargingProfileRequest(SetChargingProfileRequest r) {
                ChargingSchedule s = r.getCsChargingProfiles().getChargingSchedule();
                double limit = s.getChargingSchedulePeriod()[0].getLimit();
                String unit = s.getChargingRateUnit().toString();
                say("SET " + limit + " " + unit);
                if (!accept) return new SetChargingProfileConfirmation(ChargingProfileStatus.Rejected);
                limitW = unit.equals("A") ? limit * 230.0 * 3 : limit;
                return new SetChargingProfileConfirmation(ChargingProfileStatus.Accepted);
            }
            public ClearChargingProfileConfirmation handleClearChargingProfileRequest(ClearChargingProfileRequest r) {
                say("CLEAR " + r.getId());
                limitW = null;
                return new ClearChargingProfileConfirmation(ClearChargingProfileStatus.Accepted);
            }
            public GetCompositeScheduleConfirmation handleGetCompositeScheduleRequest(GetCompositeScheduleRequest r) { return null; }
        }));
        client = c;
        c.connect(url, new ClientEvents() {
            public void connectionOpened() { open = true; }
            public void connectionClosed() { open = false; booted = false; say("CLOSED"); }
        });
    }

    // The library reports the socket open before its session can send: boot from the timer,
    // retrying until the BootNotification is answered.
    static void bootIfNeeded() {
        if (!open || booted || booting) return;
        booting = true;
        try {
            client.send(core.createBootNotificationRequest("evgrid-test", "JavaCharger"))
                .whenComplete((conf, err) -> {
                    booting = false;
                    if (err == null) { booted = true; say("BOOTED"); }
                });
        } catch (Exception e) {
            booting = false;
        }
    }

    static void meter() {
        if (!open || !booted) return;
        try {
            double w = limitW == null ? powerW : Math.min(powerW, limitW);
            SampledValue power = new SampledValue(String.format(java.util.Locale.ROOT, "%.1f", w));
            power.setMeasurand("Power.Active.Import");
            power.setUnit("W");
            SampledValue energy = new SampledValue("1000");
            energy.setMeasurand("Energy.Active.Import.Register");
            energy.setUnit("Wh");
            client.send(core.createMeterValuesRequest(1, ZonedDateTime.now(), power, energy));
        } catch (Exception e) {
            say("ERROR meter " + e);
        }
    }
}
