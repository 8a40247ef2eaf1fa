// A Java producer and consumer of Tideline records, with nothing but the schema file
// `tideline schemas export DIR` writes: it sends one card event to events.raw in Avro,
// then reads it back from events, validated by ingest, and prints it.
//
// Run (Java 17+, Apache Avro 1.12 and kafka-clients on the class path):
//   java -cp "avro/*:kafka/*" CardEvents.java localhost:9092 tideline. \
//       avsc/tideline.projects.cards.Event.avsc evt-java-1 [client.properties]
// On a secured cluster the last argument is the client's connection, e.g. what
// `tideline stack credentials admin --format java` prints (a principal that may write
// events.raw and read events).
import java.io.File;
import java.io.FileReader;
import java.io.Reader;
import java.time.Duration;
import java.util.List;
import java.util.Properties;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.avro.message.BinaryMessageEncoder;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class CardEvents {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], prefix = args[1], eventId = args[3];
        Schema schema = new Schema.Parser().parse(new File(args[2]));  // self-contained

        GenericRecord payload = new GenericData.Record(schema.getField("payload").schema());
        payload.put("card_id", "card-java");
        payload.put("merchant_id", null);  // optional in the project
        payload.put("category", "grocery");
        payload.put("amount", 12.5);
        payload.put("country", "FR");
        payload.put("channel", "app");
        payload.put("card_present", false);
        GenericRecord event = new GenericData.Record(schema);
        event.put("event_id", eventId);
        event.put("entity_id", "card-java");
        event.put("event_time", System.currentTimeMillis());  // timestamp-millis: a long
        event.put("payload", payload);
        // single-object encoding: the marker, the schema's fingerprint, the record
        byte[] value = new BinaryMessageEncoder<GenericRecord>(GenericData.get(), schema)
            .encode(event).array();

        Properties connection = new Properties();
        if (args.length > 4) {
            try (Reader file = new FileReader(args[4])) {
                connection.load(file);
            }
        }
        connection.put("bootstrap.servers", bootstrap);

        Properties producing = new Properties();
        producing.putAll(connection);
        producing.put("acks", "all");
        try (KafkaProducer<String, byte[]> producer =
                 new KafkaProducer<>(producing, new StringSerializer(), new ByteArraySerializer())) {
            // keyed by the entity, as the catalog says, so its events keep their order
            producer.send(new ProducerRecord<>(prefix + "events.raw", "card-java", value)).get();
        }

        Properties consuming = new Properties();
        consuming.putAll(connection);
        consuming.put("group.id", "java-" + eventId);
        consuming.put("auto.offset.reset", "earliest");
        BinaryMessageDecoder<GenericRecord> decoder =
            new BinaryMessageDecoder<>(GenericData.get(), schema);
        try (KafkaConsumer<String, byte[]> consumer =
                 new KafkaConsumer<>(consuming, new StringDeserializer(), new ByteArrayDeserializer())) {
            consumer.subscribe(List.of(prefix + "events"));
            long deadline = System.currentTimeMillis() + 60_000;
            while (System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, byte[]> record : consumer.poll(Duration.ofSeconds(1))) {
                    GenericRecord validated = decoder.decode(record.value());
                    if (validated.get("event_id").toString().equals(eventId)) {
                        System.out.println(GenericData.get().toString(validated));
                        return;
                    }
                }
            }
        }
        System.err.println("no validated event " + eventId + " on " + prefix + "events");
        System.exit(1);
    }
}
